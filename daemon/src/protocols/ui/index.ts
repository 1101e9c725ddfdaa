/** The web UI, mounted on the HTTP server: static files, state (session, language), pages and the page JSON routes. */
import type Koa from 'koa';
import type { Config } from '../../config/schema.ts';
import { fail } from '../../core/errors.ts';
import type { Core } from '../../core/index.ts';
import { uiApiRoutes } from './api.ts';
import { createViews, render, errorText, uiState, type UiContext } from './context.ts';
import { pageRoutes } from './pages.ts';
import { staticFiles } from './static.ts';

/** Adds the UI to a Koa app (before the JSON API). */
export function mountUi(app: Koa, core: Core, config: Config): void {
  const ui: UiContext = { core, config, env: createViews() };
  app.use(staticFiles());
  const pages = pageRoutes(ui);
  const api = uiApiRoutes(ui);
  app.use(async (ctx, next) => {
    if (ctx.path.startsWith('/api/') || ctx.path === '/healthz' || ctx.path === '/readyz') return next();
    await uiState(ui)(ctx, async () => {
      if (ctx.path.startsWith('/ui/api/')) {
        await api.routes()(ctx as never, next);
        return;
      }
      try {
        await pages.routes()(ctx as never, next);
        if (ctx.status === 404 && ctx.body === undefined) render(ui, ctx, 'error.njk', { error: errorText(ctx, fail('SEALDROP_E_NOT_FOUND', 'no such page')) }, 404);
      } catch (err) {
        const state = ctx.state as { principal?: unknown };
        render(ui, ctx, 'error.njk', { error: errorText(ctx, err) }, (err as { code?: string }).code === 'SEALDROP_E_FORBIDDEN' && !state.principal ? 403 : 400);
      }
    });
  });
}
