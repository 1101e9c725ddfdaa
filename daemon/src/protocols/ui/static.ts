/** Static files of the UI: admin-ui/static/* and openpgp.js's browser build, with safe paths and types. */
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Context, Next } from 'koa';
import { openpgpBrowserBuild, UI_DIRS } from './assets.ts';

const TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
};

/** Serves GET /static/...; anything outside the folders or of an unknown type is a 404. */
export function staticFiles() {
  const vendor = openpgpBrowserBuild();
  return async (ctx: Context, next: Next): Promise<void> => {
    if (!ctx.path.startsWith('/static/') || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    let file: string;
    if (ctx.path === '/static/vendor/openpgp.min.mjs') file = vendor;
    else {
      const rel = decodeURIComponent(ctx.path.slice('/static/'.length));
      file = path.resolve(UI_DIRS.static, rel);
      if (!file.startsWith(UI_DIRS.static + path.sep) || rel.includes('\0')) return next();
    }
    const type = TYPES[path.extname(file)];
    const st = await fs.stat(file).catch(() => undefined);
    if (!type || !st?.isFile()) return next();
    ctx.set('Content-Type', type);
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.status = 200;
    ctx.length = st.size;
    if (ctx.method === 'GET') ctx.body = createReadStream(file);
  };
}
