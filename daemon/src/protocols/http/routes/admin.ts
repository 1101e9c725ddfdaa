/** Routes: administration — accounts, SecuPass reset. All need the admin scope. */
import type Router from '@koa/router';
import { actorOf, requireScope } from '../../../core/context.ts';
import type { ApiContext } from '../api.ts';
import { param, principalOf, readJson } from '../request.ts';

/** Admin routes (authenticated, admin scope). */
export function adminRoutes(router: Router, { core, config }: ApiContext): void {
  router.use('/admin', async (ctx, next) => {
    requireScope(principalOf(ctx), 'admin');
    await next();
  });

  router.post('/admin/accounts', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    const result = await core.accounts.createAccount(actorOf(principalOf(ctx)), { email: body.email, role: body.role ?? 'member', owner: body.owner, password: body.password });
    ctx.status = 201;
    ctx.body = result;
  });

  router.get('/admin/accounts', async (ctx) => {
    ctx.body = { accounts: await core.accounts.listAccounts(principalOf(ctx)) };
  });

  router.post('/admin/accounts/:email/disable', async (ctx) => {
    ctx.body = { account: await core.accounts.setDisabled(actorOf(principalOf(ctx)), param(ctx, 'email'), true) };
  });

  router.post('/admin/accounts/:email/enable', async (ctx) => {
    ctx.body = { account: await core.accounts.setDisabled(actorOf(principalOf(ctx)), param(ctx, 'email'), false) };
  });

  router.post('/admin/accounts/:email/secupass-reset', async (ctx) => {
    ctx.body = await core.secupass.adminReset(actorOf(principalOf(ctx)), param(ctx, 'email'));
  });
}
