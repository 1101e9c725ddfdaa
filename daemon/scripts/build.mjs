// Bundles the daemon for running without the TypeScript loader: dist/sealdrop.mjs (the CLI and
// daemon), dist/encrypt-worker.mjs (the encryption worker thread) and dist/key-worker.mjs (argon2 key
// work, crypto/isolated-keys.ts). Dependencies stay in
// node_modules. Runs on `npm install` (prepare) and before `npm start`; takes well under a second.
import { build } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';

const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', sourcemap: true, logLevel: 'warning' };
mkdirSync('dist', { recursive: true });
await build({ ...common, outExtension: { '.js': '.mjs' }, entryPoints: { sealdrop: 'daemon/src/cli/main.ts', 'encrypt-worker': 'daemon/src/crypto/encrypt-worker.ts', 'key-worker': 'daemon/src/crypto/key-worker.ts' }, outdir: 'dist' });
writeFileSync('dist/BUILD', `${new Date().toISOString()}\n`);
