/** Routes: the caller's SSH keys for SFTP login. */
import type Router from '@koa/router';
import type { ApiContext } from '../api.ts';
import { param, principalOf, readJson } from '../request.ts';

/** SSH key routes (authenticated; every account manages its own keys). */
export function sshKeyRoutes(router: Router, { core, config }: ApiContext): void {
  router.post('/ssh-keys', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    ctx.status = 201;
    ctx.body = { key: await core.sshKeys.addOwn(principalOf(ctx), body.publicKey) };
  });

  router.get('/ssh-keys', async (ctx) => {
    ctx.body = { keys: await core.sshKeys.list({ accountId: principalOf(ctx).accountId }) };
  });

  router.delete('/ssh-keys/:id', async (ctx) => {
    await core.sshKeys.removeOwn(principalOf(ctx), param(ctx, 'id'));
    ctx.status = 204;
  });
}
