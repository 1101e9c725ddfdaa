/** Routes: login sessions, API tokens, registration, password reset, invitations, the caller's account. */
import type Router from '@koa/router';
import type { ApiContext } from '../api.ts';
import { param, principalOf, readJson, type ApiState } from '../request.ts';

/** Routes that need no authentication. */
export function publicAccountRoutes(router: Router, { core, config }: ApiContext): void {
  router.post('/session', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    const { token, expiresAt, account } = await core.accounts.login({ email: body.email, password: body.password }, ctx.request.ip, 'api');
    ctx.status = 201;
    ctx.body = { token, expiresAt, account };
  });

  router.post('/registration', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    const account = await core.accounts.register({ token: body.token, password: body.password }, ctx.request.ip);
    ctx.status = 201;
    ctx.body = { account };
  });

  router.post('/password-reset', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    await core.accounts.requestPasswordReset(body.email, ctx.request.ip);
    ctx.status = 202;
    ctx.body = { accepted: true };
  });

  router.post('/password-reset/complete', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    await core.accounts.completePasswordReset({ token: body.token, password: body.password }, ctx.request.ip);
    ctx.status = 204;
  });
}

/** Routes for an authenticated caller. */
export function accountRoutes(router: Router, { core, config }: ApiContext): void {
  router.get('/me', async (ctx) => {
    ctx.body = { account: await core.accounts.me(principalOf(ctx)) };
  });

  router.delete('/session', async (ctx) => {
    await core.accounts.logout(principalOf(ctx), (ctx.state as ApiState).bearer);
    ctx.status = 204;
  });

  router.post('/password', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    await core.accounts.changePassword(principalOf(ctx), { currentPassword: body.currentPassword, newPassword: body.newPassword }, (ctx.state as ApiState).bearer);
    ctx.status = 204;
  });

  router.post('/tokens', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    const { token, tokenInfo } = await core.accounts.createApiToken(principalOf(ctx), body);
    ctx.status = 201;
    ctx.body = { token, ...tokenInfo };
  });

  router.get('/tokens', async (ctx) => {
    ctx.body = { tokens: await core.accounts.listApiTokens(principalOf(ctx)) };
  });

  router.delete('/tokens/:id', async (ctx) => {
    await core.accounts.revokeApiToken(principalOf(ctx), param(ctx, 'id'));
    ctx.status = 204;
  });

  router.post('/invitations/:email/resend', async (ctx) => {
    await core.accounts.resendInvitation(principalOf(ctx), param(ctx, 'email'));
    ctx.status = 202;
    ctx.body = { sent: true };
  });

  router.get('/notifications', async (ctx) => {
    ctx.body = { notifications: await core.deliveries.notifications(principalOf(ctx), { unreadOnly: ctx.query.unread === 'true' }) };
  });

  router.post('/notifications/read', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    ctx.body = { marked: await core.deliveries.markNotificationsRead(principalOf(ctx), body.ids) };
  });
}
