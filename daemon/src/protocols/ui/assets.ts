/** Where the UI's files are: admin-ui/ (views, locales, static) and openpgp.js's browser build. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(path.join(dir, 'admin-ui', 'views'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the admin-ui folder');
}

const root = findRoot();

/** Folders of the UI. */
export const UI_DIRS = {
  views: path.join(root, 'admin-ui', 'views'),
  locales: path.join(root, 'admin-ui', 'locales'),
  static: path.join(root, 'admin-ui', 'static'),
};

/** openpgp.js's browser module (ESM), served as /static/vendor/openpgp.min.mjs. */
export function openpgpBrowserBuild(): string {
  const nodeEntry = fileURLToPath(import.meta.resolve('openpgp'));
  // …/openpgp/dist/node/openpgp.min.mjs → …/openpgp/dist/openpgp.min.mjs
  return path.join(path.dirname(path.dirname(nodeEntry)), 'openpgp.min.mjs');
}
