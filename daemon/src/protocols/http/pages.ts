/**
 * The pages that e-mailed links open, as plain server-rendered HTML forms without script:
 * registration, password reset and level-1 downloads. Every value is escaped. (The full web UI
 * with login, SecuPass and inbox lives in admin-ui/ once it is built.)
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Config } from '../../config/schema.ts';
import type { Core } from '../../core/index.ts';
import { isSealdropError } from '../../core/errors.ts';
import { describePasswordPolicy } from '../../core/validation.ts';

function esc(s: unknown): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

function page(ctx: Context, title: string, body: string, status = 200): void {
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Content-Security-Policy', "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  ctx.body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer">
<title>${esc(title)} — sealdrop</title></head>
<body><main><h1>${esc(title)}</h1>
${body}
</main></body></html>
`;
}

async function readForm(ctx: Context, limit: number): Promise<URLSearchParams> {
  if (!/^application\/x-www-form-urlencoded\b/i.test(ctx.get('content-type'))) return new URLSearchParams();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) return new URLSearchParams();
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function problem(err: unknown): string {
  if (isSealdropError(err)) return `<p role="alert"><strong>${esc(err.message)}</strong> (${esc(err.code)})</p>`;
  throw err;
}

function passwordForm(action: string, token: string, policy: string, error = ''): string {
  return `${error}<form method="post" action="${esc(action)}">
<input type="hidden" name="token" value="${esc(token)}">
<p><label for="password">New password</label><br><input id="password" name="password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"></p>
<p><label for="confirm">Repeat the password</label><br><input id="confirm" name="confirm" type="password" autocomplete="new-password" required></p>
<p>Password rules: ${esc(policy)}.</p>
<p><button type="submit">Save password</button></p>
</form>`;
}

/** Routes of the link pages. */
export function pageRouter({ core, config }: { core: Core; config: Config }): Router {
  const router = new Router();
  const policy = describePasswordPolicy(config.accounts.passwordMinLength);
  const limit = config.http.maxJsonBytes;

  /** A page with a password form for a mailed token; `complete` uses the token and returns the success text. */
  const tokenPasswordPage = (pathname: string, title: string, intro: string, done: string, complete: (token: string, password: string | null, ip: string) => Promise<string>) => {
    router.get(pathname, (ctx) => {
      page(ctx, title, `<p>${esc(intro)}</p>${passwordForm(pathname, String(ctx.query.token ?? ''), policy)}`);
    });
    router.post(pathname, async (ctx) => {
      const form = await readForm(ctx, limit);
      const token = form.get('token') ?? '';
      if (form.get('password') !== form.get('confirm')) {
        page(ctx, title, passwordForm(pathname, token, policy, '<p role="alert"><strong>The two passwords differ.</strong></p>'), 400);
        return;
      }
      try {
        const text = await complete(token, form.get('password'), ctx.request.ip);
        page(ctx, done, `<p>${esc(text)}</p>`);
      } catch (err) {
        page(ctx, title, passwordForm(pathname, token, policy, problem(err)), 400);
      }
    });
  };

  tokenPasswordPage(
    '/register',
    'Register with sealdrop',
    'Set the password you will log in with. Afterwards you set up your SecuPass, a second passphrase that protects your key.',
    'Registered',
    async (token, password, ip) => {
      const account = await core.accounts.register({ token, password }, ip);
      return `Your account ${account.email} is active. Log in and set up your SecuPass to receive end-to-end encrypted deliveries (API: POST /api/v1/session, then POST /api/v1/secupass).`;
    },
  );

  tokenPasswordPage('/password-reset', 'Choose a new password', 'Your SecuPass and your deliveries stay as they are.', 'Password changed', async (token, password, ip) => {
    await core.accounts.completePasswordReset({ token, password }, ip);
    return 'Your new password is set. Every earlier login session has ended.';
  });

  router.get('/link', async (ctx) => {
    const token = String(ctx.query.token ?? '');
    try {
      const d = await core.deliveries.linkView(token);
      const files = d.files
        .map(
          (f) => `<li><form method="get" action="/api/v1/links/${esc(encodeURIComponent(token))}/files/${esc(f.id)}">
<strong>${esc(f.name)}</strong> (${esc(f.size)} bytes)
<label>Your e-mail address <input name="email" type="email" autocomplete="email" required></label>
<button type="submit">Download</button></form></li>`,
        )
        .join('\n');
      page(
        ctx,
        d.subject,
        `<p>From ${esc(d.sender)}, available until ${esc(d.expiresAt.slice(0, 10))}. Downloads are logged with the e-mail address you enter.</p>
${d.message ? `<blockquote><pre>${esc(d.message)}</pre></blockquote>` : ''}
<ul>${files}</ul>`,
      );
    } catch (err) {
      page(ctx, 'Delivery not available', problem(err), 400);
    }
  });

  return router;
}
