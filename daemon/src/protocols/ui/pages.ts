/**
 * The UI's pages: server-rendered, one route each. Business rules stay in the core; pages read
 * views of it and post forms to it. What must stay on the device — key generation, decryption,
 * release and encryption of files sent from the browser — runs in admin-ui/static/js.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { actorOf } from '../../core/context.ts';
import { fail, isSealdropError } from '../../core/errors.ts';
import { detachedBody } from '../http/body.ts';
import { describePasswordPolicy } from '../../core/validation.ts';
import { errorText, LANG_COOKIE, loggedIn, render, requireCsrf, SESSION_COOKIE, setCookie, type UiContext, type UiState } from './context.ts';
import { LOCALES } from './i18n.ts';

const REG_COOKIE = 'sd_reg';
const RESET_COOKIE = 'sd_reset';
const TOKEN_COOKIE_MS = 30 * 60_000;

async function readForm(ctx: Context, limit: number): Promise<URLSearchParams> {
  if (!/^application\/x-www-form-urlencoded\b/i.test(ctx.get('content-type'))) return new URLSearchParams();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of detachedBody(ctx.req)) {
    size += (chunk as Buffer).length;
    if (size > limit) throw fail('SEALDROP_E_TOO_LARGE', 'the form is too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** A local path to go back to (never another site). */
function safeNext(next: unknown, fallback = '/inbox'): string {
  return typeof next === 'string' && /^\/[A-Za-z0-9/_\-.?=&%]*$/.test(next) && !next.startsWith('//') ? next : fallback;
}

/** The notices /admin/accounts shows after an action (`?done=`); the catalogues have one for each. */
const ADMIN_DONE = new Set(['invited', 'disable', 'enable', 'role', 'resend', 'reset']);

/** The UI page routes. */
export function pageRoutes(ui: UiContext): Router {
  const { core, config } = ui;
  const router = new Router();
  const policy = describePasswordPolicy(config.accounts.passwordMinLength);
  const limit = config.http.maxJsonBytes;
  const form = new WeakMap<Context, URLSearchParams>();
  const csrf = requireCsrf(ui, (ctx) => ctx.get('x-csrf-token') || form.get(ctx)?.get('_csrf'));

  /** Reads the form and checks its CSRF token. */
  const postedForm = async (ctx: Context): Promise<URLSearchParams> => {
    const f = await readForm(ctx, limit);
    form.set(ctx, f);
    csrf(ctx);
    return f;
  };

  router.get('/', (ctx) => {
    ctx.redirect((ctx.state as UiState).principal ? '/inbox' : '/login');
  });

  router.get('/lang', (ctx) => {
    const l = String(ctx.query.l ?? '');
    if ((LOCALES as readonly string[]).includes(l)) setCookie(ctx, LANG_COOKIE, l, { sameSite: 'lax', maxAgeMs: 365 * 86_400_000 });
    ctx.redirect(safeNext(ctx.query.next, '/'));
  });

  // ------------------------------------------------------------ login, logout

  router.get('/login', (ctx) => {
    render(ui, ctx, 'login.njk', { next: safeNext(ctx.query.next), notice: ctx.query.registered ? 'login.registered' : ctx.query.reset ? 'login.passwordChanged' : ctx.query.expired ? 'login.expired' : null });
  });

  router.post('/login', async (ctx) => {
    const f = await readForm(ctx, limit);
    const next = safeNext(f.get('next'));
    try {
      const { token, expiresAt } = await core.accounts.loginUi({ email: f.get('email'), password: f.get('password') }, ctx.request.ip);
      setCookie(ctx, SESSION_COOKIE, token, { sameSite: 'strict', maxAgeMs: expiresAt.getTime() - Date.now() });
      ctx.redirect(next);
    } catch (err) {
      render(ui, ctx, 'login.njk', { next, email: f.get('email') ?? '', error: errorText(ctx, err) }, isSealdropError(err, 'SEALDROP_E_RATE_LIMITED') ? 429 : 401);
    }
  });

  router.post('/logout', async (ctx) => {
    await postedForm(ctx);
    await core.accounts.logoutUi(ctx.cookies.get(SESSION_COOKIE));
    setCookie(ctx, SESSION_COOKIE, null, { sameSite: 'strict' });
    ctx.redirect('/login');
  });

  // ------------------------------------------------------------ mailed links: registration, password reset

  /**
   * A page behind a mailed token: the first request moves the token into a short-lived cookie
   * and redirects to the same page without it, so the token leaves the address bar and history.
   */
  const tokenPage = (pathname: string, cookie: string, view: string, complete: (token: string, password: string | null, ip: string) => Promise<string>) => {
    router.get(pathname, (ctx) => {
      const token = ctx.query.token;
      if (typeof token === 'string' && token) {
        setCookie(ctx, cookie, token, { sameSite: 'lax', maxAgeMs: TOKEN_COOKIE_MS, path: pathname });
        ctx.redirect(pathname);
        return;
      }
      render(ui, ctx, view, { policy, hasToken: Boolean(ctx.cookies.get(cookie)) });
    });
    router.post(pathname, async (ctx) => {
      const f = await readForm(ctx, limit);
      const token = ctx.cookies.get(cookie) ?? '';
      const fieldErrors: Record<string, string> = {};
      if (f.get('password') !== f.get('confirm')) fieldErrors.confirm = 'form.passwordsDiffer';
      if (Object.keys(fieldErrors).length) {
        render(ui, ctx, view, { policy, hasToken: Boolean(token), fieldErrors }, 400);
        return;
      }
      try {
        const target = await complete(token, f.get('password'), ctx.request.ip);
        setCookie(ctx, cookie, null, { sameSite: 'lax', path: pathname });
        ctx.redirect(target);
      } catch (err) {
        const policyError = isSealdropError(err, 'SEALDROP_E_PASSWORD_POLICY');
        render(ui, ctx, view, { policy, hasToken: Boolean(token), fieldErrors: policyError ? { password: errorText(ctx, err) } : {}, error: policyError ? null : errorText(ctx, err) }, 400);
      }
    });
  };

  tokenPage('/register', REG_COOKIE, 'register.njk', async (token, password, ip) => {
    await core.accounts.register({ token, password }, ip);
    return '/login?registered=1';
  });

  tokenPage('/password-reset', RESET_COOKIE, 'password-reset.njk', async (token, password, ip) => {
    await core.accounts.completePasswordReset({ token, password }, ip);
    return '/login?reset=1';
  });

  router.get('/password-forgot', (ctx) => render(ui, ctx, 'password-forgot.njk', {}));
  router.post('/password-forgot', async (ctx) => {
    const f = await readForm(ctx, limit);
    await core.accounts.requestPasswordReset(f.get('email'), ctx.request.ip);
    render(ui, ctx, 'password-forgot.njk', { sent: true });
  });

  // ------------------------------------------------------------ SecuPass

  router.get('/secupass', async (ctx) => {
    const p = loggedIn(ctx);
    if (!p) return;
    const me = await core.accounts.me(p);
    render(ui, ctx, 'secupass.njk', { active: me.secupassActive, email: me.email, s2k: config.crypto.s2kArgon2, minLength: config.accounts.secupassMinLength });
  });

  // ------------------------------------------------------------ inbox, outbox, delivery

  router.get('/inbox', async (ctx) => {
    const p = loggedIn(ctx);
    if (!p) return;
    const me = await core.accounts.me(p);
    const deliveries = p.scopes.has('fetch') ? await core.deliveries.list(p, { box: 'inbox' }) : [];
    render(ui, ctx, 'inbox.njk', { deliveries, secupassActive: me.secupassActive, needsSecupass: !me.secupassActive && p.role !== 'service' });
  });

  router.get('/outbox', async (ctx) => {
    const p = loggedIn(ctx);
    if (!p) return;
    const [deliveries, notifications] = await Promise.all([core.deliveries.list(p, { box: 'outbox' }), core.deliveries.notifications(p, { unreadOnly: true })]);
    render(ui, ctx, 'outbox.njk', { deliveries, notifications });
  });

  router.post('/notifications/read', async (ctx) => {
    const p = loggedIn(ctx);
    if (!p) return;
    await postedForm(ctx);
    await core.deliveries.markNotificationsRead(p, undefined);
    ctx.redirect('/outbox');
  });

  router.get('/deliveries/:id', async (ctx) => {
    const p = loggedIn(ctx);
    if (!p) return;
    const id = (ctx as unknown as { params: { id: string } }).params.id;
    try {
      const delivery = await core.deliveries.get(p, id);
      const me = await core.accounts.me(p);
      let message: string | null = null;
      if (delivery.hasMessage && delivery.level < 4 && delivery.role !== 'admin') message = await core.deliveries.readMessage(p, id).catch(() => null);
      const canRelease = delivery.owner === p.email && delivery.level >= 3;
      const waiting = delivery.recipients.some((r) => r.state === 'awaiting_release');
      const material = canRelease && waiting ? await core.deliveries.releaseMaterial(p, id).catch(() => null) : null;
      const done = ctx.query.resent ? 'admin.done.resend' : ctx.query.revoked ? 'delivery.revoked' : null;
      render(ui, ctx, 'delivery.njk', { delivery, message, me, isSender: delivery.role === 'sender' || delivery.role === 'owner', canRelease, material, done });
    } catch (err) {
      render(ui, ctx, 'error.njk', { error: errorText(ctx, err) }, 404);
    }
  });

  router.post('/deliveries/:id/revoke', async (ctx) => {
    const p = loggedIn(ctx);
    if (!p) return;
    await postedForm(ctx);
    const id = (ctx as unknown as { params: { id: string } }).params.id;
    await core.deliveries.revoke(p, id);
    ctx.redirect(`/deliveries/${encodeURIComponent(id)}?revoked=1`);
  });

  router.post('/deliveries/:id/resend', async (ctx) => {
    const p = loggedIn(ctx);
    if (!p) return;
    const f = await postedForm(ctx);
    const id = (ctx as unknown as { params: { id: string } }).params.id;
    await core.accounts.resendInvitation(p, f.get('email'));
    ctx.redirect(`/deliveries/${encodeURIComponent(id)}?resent=1`);
  });

  router.get('/send', async (ctx) => {
    const p = loggedIn(ctx);
    if (!p) return;
    const me = await core.accounts.me(p);
    render(ui, ctx, 'send.njk', { secupassActive: me.secupassActive, defaultExpiry: config.deliveries.defaultExpiryDays, maxExpiry: config.deliveries.maxExpiryDays });
  });

  // ------------------------------------------------------------ admin

  const admin = (ctx: Context) => {
    const p = loggedIn(ctx);
    if (!p) return null;
    if (!p.scopes.has('admin')) throw fail('SEALDROP_E_FORBIDDEN', 'administrators only');
    return p;
  };

  router.get('/admin/accounts', async (ctx) => {
    const p = admin(ctx);
    if (!p) return;
    // Only the notices this page knows (another value would be shown as its catalogue key).
    const done = typeof ctx.query.done === 'string' && ADMIN_DONE.has(ctx.query.done) ? ctx.query.done : null;
    render(ui, ctx, 'admin-accounts.njk', { accounts: await core.accounts.listAccounts(p), done });
  });

  router.post('/admin/accounts', async (ctx) => {
    const p = admin(ctx);
    if (!p) return;
    const f = await postedForm(ctx);
    try {
      await core.accounts.createAccount(actorOf(p), { email: f.get('email'), role: f.get('role'), owner: f.get('owner') || undefined });
      ctx.redirect('/admin/accounts?done=invited');
    } catch (err) {
      // An error about one field is shown next to it; others above the form.
      const field = isSealdropError(err) ? err.details?.field : undefined;
      const onField = field === 'email' || field === 'owner' || field === 'role';
      render(ui, ctx, 'admin-accounts.njk', { accounts: await core.accounts.listAccounts(p), error: onField ? null : errorText(ctx, err), fieldErrors: onField ? { [field]: errorText(ctx, err) } : {}, form: Object.fromEntries(f) }, 400);
    }
  });

  router.post('/admin/accounts/:email/:action', async (ctx) => {
    const p = admin(ctx);
    if (!p) return;
    const f = await postedForm(ctx);
    const { email, action } = (ctx as unknown as { params: { email: string; action: string } }).params;
    if (action === 'disable' || action === 'enable') await core.accounts.setDisabled(actorOf(p), email, action === 'disable');
    else if (action === 'role') await core.accounts.setRole(actorOf(p), email, f.get('role'));
    else if (action === 'resend') await core.accounts.resendInvitation(p, email);
    else if (action === 'reset') {
      if (f.get('confirm') !== email) throw fail('SEALDROP_E_VALIDATION', 'type the e-mail address to confirm the reset');
      await core.secupass.adminReset(actorOf(p), email);
    } else throw fail('SEALDROP_E_NOT_FOUND', 'no such action');
    ctx.redirect(`/admin/accounts?done=${action}`);
  });

  router.get('/admin/accounts/:email/reset', async (ctx) => {
    const p = admin(ctx);
    if (!p) return;
    const { email } = (ctx as unknown as { params: { email: string } }).params;
    render(ui, ctx, 'admin-reset.njk', { email });
  });

  router.get('/admin/deliveries', async (ctx) => {
    const p = admin(ctx);
    if (!p) return;
    render(ui, ctx, 'admin-deliveries.njk', { deliveries: await core.deliveries.adminList(p, { state: ctx.query.state }), state: ctx.query.state ?? '' });
  });

  router.get('/admin/audit', async (ctx) => {
    const p = admin(ctx);
    if (!p) return;
    const q = ctx.query;
    const str = (v: unknown) => (typeof v === 'string' && v.trim() ? v.trim().slice(0, 100) : undefined);
    const date = (v: unknown) => (str(v) && !Number.isNaN(Date.parse(str(v) as string)) ? new Date(str(v) as string) : undefined);
    const filter = { action: str(q.action), actor: str(q.actor), targetId: str(q.target), since: date(q.since), until: date(q.until), limit: 300 };
    const events = await core.audit(filter);
    render(ui, ctx, 'admin-audit.njk', { events, filter: { action: filter.action ?? '', actor: filter.actor ?? '', target: filter.targetId ?? '', since: str(q.since) ?? '', until: str(q.until) ?? '' } });
  });

  // ------------------------------------------------------------ level-1 links

  router.get('/link', async (ctx) => {
    const token = String(ctx.query.token ?? '');
    try {
      render(ui, ctx, 'link.njk', { delivery: await core.deliveries.linkView(token), token });
    } catch (err) {
      render(ui, ctx, 'error.njk', { error: errorText(ctx, err) }, 400);
    }
  });

  return router;
}
