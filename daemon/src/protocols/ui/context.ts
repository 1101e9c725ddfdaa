/**
 * What every UI request gets: the language, the browser session (HttpOnly cookie) and its CSRF
 * token, the strict security headers, and rendering of auto-escaped Nunjucks views.
 */
import type { Context, Next } from 'koa';
import nunjucks from 'nunjucks';
import type { Config } from '../../config/schema.ts';
import type { Principal } from '../../core/context.ts';
import { fail, isSealdropError } from '../../core/errors.ts';
import type { Core } from '../../core/index.ts';
import { UI_DIRS } from './assets.ts';
import { errorTexts, negotiate, translate, type Locale } from './i18n.ts';

/** The session cookie. */
export const SESSION_COOKIE = 'sd_session';
/** The language cookie. */
export const LANG_COOKIE = 'sd_lang';

/** Koa state of a UI request. */
export interface UiState {
  locale: Locale;
  principal: Principal | null;
  sessionToken: string | null;
  csrf: string | null;
  /** A session cookie came with the request but its session has ended (expired, logged out, disabled). */
  sessionEnded: boolean;
  secupassActive?: boolean;
}

/** The UI's shared parts. */
export interface UiContext {
  core: Core;
  config: Config;
  env: nunjucks.Environment;
}

/** The Nunjucks environment over admin-ui/views, auto-escaping everything. */
export function createViews(): nunjucks.Environment {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(UI_DIRS.views, { noCache: false }), { autoescape: true, throwOnUndefined: false, trimBlocks: true, lstripBlocks: true });
  // Times are shown in UTC, marked as such (the daemon does not know the reader's time zone).
  env.addFilter('date', (iso: unknown) => (typeof iso === 'string' ? `${iso.slice(0, 16).replace('T', ' ')} UTC` : ''));
  env.addFilter('bytes', function (this: { ctx?: { locale?: string } }, n: unknown) {
    const v = Number(n);
    if (!Number.isFinite(v)) return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let x = v;
    while (x >= 1024 && i < units.length - 1) {
      x /= 1024;
      i++;
    }
    const digits = i === 0 ? 0 : 1;
    return `${x.toLocaleString(this.ctx?.locale === 'de' ? 'de-DE' : 'en-GB', { minimumFractionDigits: digits, maximumFractionDigits: digits })} ${units[i]}`;
  });
  env.addFilter('fingerprint', (fp: unknown) => (typeof fp === 'string' ? (fp.toUpperCase().match(/.{1,4}/g) ?? []).join(' ') : ''));
  return env;
}

const CSP = [
  "default-src 'self'",
  // openpgp.js runs argon2 in WebAssembly.
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'",
].join('; ');

/** Security headers of every UI response. */
export function uiHeaders(ctx: Context): void {
  ctx.set('Content-Security-Policy', CSP);
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
  ctx.set('Cross-Origin-Resource-Policy', 'same-origin');
  ctx.set('Permissions-Policy', 'camera=(), microphone=(), geolocation=(), payment=()');
  ctx.set('Cache-Control', 'no-store');
}

/** Sets a cookie with the UI's defaults (HttpOnly, Secure behind TLS). */
export function setCookie(ctx: Context, name: string, value: string | null, opts: { maxAgeMs?: number; sameSite: 'strict' | 'lax'; path?: string }): void {
  ctx.cookies.set(name, value, {
    httpOnly: true,
    secure: ctx.secure,
    sameSite: opts.sameSite,
    path: opts.path ?? '/',
    overwrite: true,
    ...(value === null ? { maxAge: 0 } : opts.maxAgeMs ? { maxAge: opts.maxAgeMs } : {}),
  });
}

/** Middleware: language, session, CSRF token, headers. */
export function uiState(ui: UiContext) {
  return async (ctx: Context, next: Next): Promise<void> => {
    uiHeaders(ctx);
    const state = ctx.state as UiState;
    state.locale = negotiate(ctx.cookies.get(LANG_COOKIE), ctx.get('accept-language'));
    const token = ctx.cookies.get(SESSION_COOKIE) ?? null;
    state.principal = token ? await ui.core.accounts.authenticateUi(token, ctx.request.ip) : null;
    state.sessionToken = state.principal ? token : null;
    state.csrf = state.principal && token ? ui.core.accounts.csrfToken(token) : null;
    state.sessionEnded = Boolean(token && !state.principal);
    if (state.sessionEnded) setCookie(ctx, SESSION_COOKIE, null, { sameSite: 'strict' });
    await next();
  };
}

/**
 * Middleware for state-changing requests: the CSRF token must come with the form (`_csrf`) or
 * the `X-CSRF-Token` header, and a browser-sent Origin must be this site.
 */
export function requireCsrf(ui: UiContext, presented: (ctx: Context) => unknown) {
  return (ctx: Context): void => {
    const state = ctx.state as UiState;
    // Koa 3's ctx.origin is the request's Origin header, so this site's origin is built here.
    // Browsers send "null" for our own forms (the pages' referrer policy is no-referrer); the
    // CSRF token still guards those.
    const origin = ctx.get('origin');
    if (origin && origin !== 'null' && origin !== `${ctx.protocol}://${ctx.host}`) throw Object.assign(fail('SEALDROP_E_FORBIDDEN', 'cross-site request refused'), { uiKey: 'error.crossSite' });
    if (!state.sessionToken || !ui.core.accounts.checkCsrf(state.sessionToken, presented(ctx))) {
      throw Object.assign(fail('SEALDROP_E_FORBIDDEN', 'the form expired; reload the page and try again'), { uiKey: 'error.formExpired' });
    }
  };
}

/** The logged-in principal, or a redirect to the login page (returns null then). */
export function loggedIn(ctx: Context): Principal | null {
  const state = ctx.state as UiState;
  if (state.principal) return state.principal;
  ctx.redirect(`/login?next=${encodeURIComponent(ctx.path)}${state.sessionEnded ? '&expired=1' : ''}`);
  return null;
}

/** Renders a view with the common variables (t, locale, user, csrf, path). */
export function render(ui: UiContext, ctx: Context, view: string, vars: Record<string, unknown> = {}, status = 200): void {
  const state = ctx.state as UiState;
  const t = (key: string, params?: Record<string, unknown>) => translate(state.locale, key, params);
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = ui.env.render(view, {
    t,
    locale: state.locale,
    otherLocale: state.locale === 'de' ? 'en' : 'de',
    user: state.principal ? { email: state.principal.email, role: state.principal.role, admin: state.principal.scopes.has('admin'), sender: state.principal.scopes.has('send') && state.principal.role !== 'service' } : null,
    csrf: state.csrf,
    errorTexts: errorTexts(state.locale),
    path: ctx.path,
    pathWithQuery: ctx.url,
    ...vars,
  });
}

/** Codes whose message names the detail the user must fix (which rule, which name, which limit). */
const DETAILED = new Set(['SEALDROP_E_VALIDATION', 'SEALDROP_E_INVALID_EMAIL', 'SEALDROP_E_INVALID_NAME', 'SEALDROP_E_PASSWORD_POLICY', 'SEALDROP_E_TOO_LARGE', 'SEALDROP_E_LIMIT']);

/**
 * A core error as a message for the page: the `error.<code>` text of the page's language, with
 * the daemon's detail added for the codes where the detail is what the user must fix.
 */
export function errorText(ctx: Context, err: unknown): string {
  const state = ctx.state as UiState;
  if (!isSealdropError(err)) throw err;
  const uiKey = (err as { uiKey?: unknown }).uiKey;
  const key = typeof uiKey === 'string' ? uiKey : `error.${err.code}`;
  const t = translate(state.locale, key);
  if (t === key) return err.message;
  return DETAILED.has(err.code) && key === `error.${err.code}` ? `${t} (${err.message})` : t;
}
