import { mkdtempSync, writeFileSync, readdirSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { runBlobStoreContract } from './blob-store.contract.ts';
import { FsBlobStore } from './fs-blob-store.ts';

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

async function fresh(): Promise<FsBlobStore> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-blobs-'));
  roots.push(root);
  const store = new FsBlobStore(root);
  await store.init();
  return store;
}

runBlobStoreContract('FsBlobStore', fresh);

describe('FsBlobStore', () => {
  it('cleans up stale temporary files from interrupted writes', async () => {
    const store = await fresh();
    const stale = path.join(store.root, 'tmp', 'deadbeef.part');
    writeFileSync(stale, 'partial');
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(stale, old, old);
    writeFileSync(path.join(store.root, 'tmp', 'fresh.part'), 'in progress');
    expect(await store.cleanup(60_000)).toBe(1);
    expect(readdirSync(path.join(store.root, 'tmp'))).toEqual(['fresh.part']);
  });

  it('leaves no temporary file when the data fails before the file is even open', async () => {
    const store = await fresh();
    for (let i = 0; i < 20; i++) {
      // An upload refused at once: its stream is gone before put() opens the temporary file.
      const gone = new PassThrough();
      gone.destroy();
      await expect(store.put(randomBytes(16).toString('hex'), gone)).rejects.toThrow();
      expect(readdirSync(path.join(store.root, 'tmp')), `attempt ${i}`).toEqual([]);
    }
  });
});
