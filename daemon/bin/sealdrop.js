#!/usr/bin/env node
// sealdrop command-line entry point. Runs the bundle in dist/ (npm run build) when it is at
// least as new as every source file; otherwise loads the TypeScript sources through tsx.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (!entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function bundleIsFresh() {
  try {
    return statSync(path.join(root, 'dist/BUILD')).mtimeMs >= newestSource(path.join(root, 'daemon/src'));
  } catch {
    return false;
  }
}

let main;
if (process.env.SEALDROP_FROM_SOURCE !== '1' && bundleIsFresh()) {
  ({ main } = await import(path.join(root, 'dist/sealdrop.mjs')));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
