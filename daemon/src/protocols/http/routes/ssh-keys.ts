/** Routes: the caller's SSH keys for SFTP login. */
import type Router from '@koa/router';
import { actorOf, requireLogin } from '../../../core/context.ts';
import type { ApiContext } from '../api.ts';
import { param, principalOf, readJson } from '../request.ts';

/** SSH key routes (authenticated; every account manages its own keys). */
export function sshKeyRoutes(router: Router, { core, config }: ApiContext): void {
  router.post('/ssh-keys', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    const p = principalOf(ctx);
    // A key is a login of its own (with the account's full rights over SFTP).
    requireLogin(p, 'SSH keys are managed');
    ctx.status = 201;
    ctx.body = { key: await core.sshKeys.add(actorOf(p), { accountId: p.accountId }, body.publicKey) };
  });

  router.get('/ssh-keys', async (ctx) => {
    ctx.body = { keys: await core.sshKeys.list({ accountId: principalOf(ctx).accountId }) };
  });

  router.delete('/ssh-keys/:id', async (ctx) => {
    const p = principalOf(ctx);
    requireLogin(p, 'SSH keys are managed');
    await core.sshKeys.remove(actorOf(p), param(ctx, 'id'), { accountId: p.accountId });
    ctx.status = 204;
  });
}
