/** The JSON API under /api/v1: public routes, then bearer authentication, then everything else. */
import Router from '@koa/router';
import type { Config } from '../../config/schema.ts';
import type { Core } from '../../core/index.ts';
import { fail } from '../../core/errors.ts';
import { openApiDocument } from './openapi.ts';
import { bearerAuth } from './request.ts';
import { accountRoutes, publicAccountRoutes } from './routes/accounts.ts';
import { adminRoutes } from './routes/admin.ts';
import { deliveryRoutes } from './routes/deliveries.ts';
import { linkRoutes } from './routes/links.ts';
import { secupassRoutes } from './routes/secupass.ts';
import { sshKeyRoutes } from './routes/ssh-keys.ts';

/** What route modules get. */
export interface ApiContext {
  core: Core;
  config: Config;
}

/** Builds the /api/v1 router. */
export function apiRouter(ctx: ApiContext): Router {
  const open = new Router();
  open.get('/openapi.json', (c) => {
    c.body = openApiDocument;
  });
  publicAccountRoutes(open, ctx);
  linkRoutes(open, ctx);

  const authed = new Router();
  authed.use(bearerAuth(ctx.core));
  accountRoutes(authed, ctx);
  secupassRoutes(authed, ctx);
  sshKeyRoutes(authed, ctx);
  deliveryRoutes(authed, ctx);
  adminRoutes(authed, ctx);

  const api = new Router({ prefix: '/api/v1' });
  api.use(open.routes(), open.allowedMethods());
  api.use(authed.routes(), authed.allowedMethods({ throw: false }));
  api.all('/{*rest}', () => {
    throw fail('SEALDROP_E_NOT_FOUND', 'no such API route');
  });
  return api;
}
