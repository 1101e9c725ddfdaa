/** Routes: SecuPass activation, change, and the caller's key. */
import type Router from '@koa/router';
import type { ApiContext } from '../api.ts';
import { principalOf, readJson } from '../request.ts';

/** SecuPass routes (authenticated). */
export function secupassRoutes(router: Router, { core, config }: ApiContext): void {
  router.post('/secupass', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    const key = await core.secupass.activate(principalOf(ctx), body);
    ctx.status = 201;
    ctx.body = { key };
  });

  router.put('/secupass', async (ctx) => {
    const body = await readJson(ctx, config.http.maxJsonBytes);
    ctx.body = { key: await core.secupass.change(principalOf(ctx), body) };
  });

  router.get('/secupass/key', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { key: await core.secupass.getKey(principalOf(ctx)) };
  });
}
