// Bundles the daemon for running without the TypeScript loader: dist/sealdrop.mjs (the CLI and
// daemon), dist/encrypt-worker.mjs (the encryption worker thread), dist/key-worker.mjs (argon2 key
// work, crypto/isolated-keys.ts) and dist/migrate-worker.mjs (migrations at start, store/orm.ts).
// Runs on `npm install` (prepare) and before `npm start`; takes about a second.
//
// Memory: V8 keeps the source text of every loaded module for the life of the process, as two bytes
// per character when the text has a single non-ASCII character. So the bundles are written in ASCII
// with whitespace removed (names are kept, so stack traces stay readable; the .map files map them
// back), and the pure-JavaScript dependencies whose published files are large or non-ASCII are
// bundled in: openpgp (its own minified build; its readable build is 1.2 MB of two-byte text),
// zod, yaml and nodemailer (still loaded on the first mail; its 0.7 MB of source become 0.3).
// Module sources in the daemon's heap: 11.7 MB before, ~7 MB now (README, Memory). Every other
// dependency stays in node_modules: native addons, packages that load files or modules by
// computed names, and anything patched in daemon/patches.
import { build } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const BUNDLED = new Set(['openpgp', 'zod', 'yaml', 'nodemailer']);
const require = createRequire(import.meta.url);

/** The package name of a bare import ('@scope/name/sub' -> '@scope/name'), or null. */
function packageOf(specifier) {
  if (specifier.startsWith('node:') || specifier.startsWith('.') || path.isAbsolute(specifier)) return null;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const dependencies = {
  name: 'sealdrop-dependencies',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      const name = packageOf(args.path);
      if (name === null || !BUNDLED.has(name)) return { external: true };
      if (args.path === 'openpgp') {
        // The package's own minified ES module build for Node (its "import" export is the readable one).
        // require.resolve gives dist/node/openpgp.min.cjs, its CommonJS twin.
        return { path: path.join(path.dirname(require.resolve('openpgp')), 'openpgp.min.mjs') };
      }
      return undefined;
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  plugins: [dependencies],
  charset: 'ascii',
  // For the CommonJS packages bundled in (yaml): their require() of Node's built-in modules.
  banner: { js: "import { createRequire as __sealdropCreateRequire } from 'node:module';\nconst require = __sealdropCreateRequire(import.meta.url);" },
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: true,
  logLevel: 'warning',
};
mkdirSync('dist', { recursive: true });
await build({ ...common, outExtension: { '.js': '.mjs' }, entryPoints: { sealdrop: 'daemon/src/cli/main.ts', 'encrypt-worker': 'daemon/src/crypto/encrypt-worker.ts', 'key-worker': 'daemon/src/crypto/key-worker.ts', 'migrate-worker': 'daemon/src/store/migrate-worker.ts' }, outdir: 'dist' });
writeFileSync('dist/BUILD', `${new Date().toISOString()}\n`);
