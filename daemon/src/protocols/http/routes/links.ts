/** Routes: level-1 deliveries through their link token (no account; the downloader's e-mail address is required and logged). */
import type Router from '@koa/router';
import type { ApiContext } from '../api.ts';
import { param } from '../request.ts';
import { sendDownload } from './deliveries.ts';

/** Link routes (no authentication: the token is the credential). */
export function linkRoutes(router: Router, { core }: ApiContext): void {
  router.get('/links/:token', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { delivery: await core.deliveries.linkView(param(ctx, 'token')) };
  });

  router.get('/links/:token/files/:fileId', async (ctx) => {
    sendDownload(ctx, await core.deliveries.downloadByLink(param(ctx, 'token'), param(ctx, 'fileId'), ctx.query.email, ctx.request.ip));
  });
}
