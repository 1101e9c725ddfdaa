import { mkdtempSync, writeFileSync, readdirSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomFillSync } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { runBlobStoreContract } from './blob-store.contract.ts';
import { FsBlobStore, READ_BYTES } from './fs-blob-store.ts';
import { allocAligned } from '../util/direct-io.ts';
import { lendsChunks, recyclerOf } from '../util/recycle.ts';

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

async function fresh(options: { directWrites?: boolean } = {}): Promise<FsBlobStore> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-blobs-'));
  roots.push(root);
  const store = new FsBlobStore(root, options);
  await store.init();
  return store;
}

runBlobStoreContract('FsBlobStore', () => fresh());
runBlobStoreContract('FsBlobStore through the page cache', () => fresh({ directWrites: false }));

const MiB = 1024 * 1024;
/** `n` random bytes whose memory starts at a multiple of DIRECT_ALIGN (`aligned`) or not. */
function piece(n: number, aligned: boolean): Buffer {
  const b = aligned ? (allocAligned(n) as Buffer) : (allocAligned(n + 1) as Buffer).subarray(1);
  return randomFillSync(b);
}

describe('FsBlobStore direct writes (O_DIRECT)', () => {
  it('are on where the filesystem takes them (the tests\' temporary folder), and off when turned off', async () => {
    const store = await fresh();
    const status = store.directWrites;
    expect(status, `O_DIRECT writes in ${os.tmpdir()}: ${'reason' in status ? status.reason : ''}`).toEqual({ on: true });
    // The probe file is gone.
    expect(readdirSync(path.join(store.root, 'tmp'))).toEqual([]);
    expect((await fresh({ directWrites: false })).directWrites).toEqual({ on: false, reason: 'turned off (storage.directWrites: false)' });
    expect(new FsBlobStore(store.root).directWrites).toMatchObject({ on: false, reason: 'init() has not run' });
  });

  it('store the same bytes whatever the alignment and sizes of the chunks, and give each whole chunk back', async () => {
    const store = await fresh();
    // a: aligned memory; u: not. Chunks of 1 MiB and more pass the store's gathering as they are.
    const shapes: Array<Array<[number, boolean]>> = [
      [],
      [[1, false]],
      [[4095, false]],
      [[4096, false]],
      [[4097, true]],
      [[MiB, true], [MiB, true]],
      // Copied, ending on an aligned length: the aligned chunk after it goes out as it is.
      [[MiB + 4096, false], [MiB, true]],
      // A partial last block: zero-padded on disk, then the file cut back.
      [[MiB, true], [MiB + 5, false]],
      // Out of step from the first chunk on: everything after is copied, then back in step.
      [[MiB + 5, false], [MiB, true], [MiB + 4091, false], [MiB, true], [MiB + 1, true]],
    ];
    for (const shape of shapes) {
      const chunks = shape.map(([n, aligned]) => piece(n, aligned));
      const data = Buffer.concat(chunks);
      const given: Buffer[] = [];
      const key = randomBytes(16).toString('hex');
      const info = await store.put(key, lendsChunks(Readable.from(chunks), (c) => given.push(c)));
      const label = shape.map(([n, a]) => `${n}${a ? 'a' : 'u'}`).join(' ') || 'empty';
      expect(info.size, label).toBe(data.length);
      expect((await store.stat(key))?.size, label).toBe(data.length);
      const back: Buffer[] = [];
      for await (const c of await store.get(key)) back.push(Buffer.from(c as Buffer));
      expect(Buffer.concat(back).equals(data), label).toBe(true);
      const whole = chunks.filter((c) => c.length >= MiB);
      expect(whole.every((c) => given.includes(c)), label).toBe(true);
    }
    expect(readdirSync(path.join(store.root, 'tmp'))).toEqual([]);
  });
});

describe('FsBlobStore', () => {
  it('gives a lending source its chunks back once they are written, and stores the same bytes', async () => {
    const store = await fresh();
    const data = randomBytes(5 * 1024 * 1024);
    const given: Buffer[] = [];
    const chunks = [0, 1, 2, 3, 4].map((i) => Buffer.from(data.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024)));
    const source = lendsChunks(Readable.from(chunks), (c) => given.push(c));
    const k = 'abcdef0123456789abcdef0123456789';
    const info = await store.put(k, source);
    expect(info.size).toBe(data.length);
    expect(given).toHaveLength(5);
    expect(given.every((c, i) => c === chunks[i])).toBe(true);
    const back: Buffer[] = [];
    for await (const c of await store.get(k)) back.push(Buffer.from(c as Buffer));
    expect(Buffer.concat(back).equals(data)).toBe(true);
  });

  it('copies a blob through its own reader and writer, reusing the read buffers, byte for byte', async () => {
    const store = await fresh();
    const data = randomBytes(6 * 1024 * 1024 + 3);
    const from = '11111111111111111111111111111111';
    const to = '22222222222222222222222222222222';
    await store.put(from, Readable.from([data]));
    const source = await store.get(from);
    // Count what the writer gives back, passing it on to the reader's pool.
    const toPool = recyclerOf(source);
    let given = 0;
    lendsChunks(source, (c) => {
      given++;
      toPool?.(c);
    });
    const info = await store.put(to, source);
    expect(info.size).toBe(data.length);
    const back: Buffer[] = [];
    for await (const c of await store.get(to)) back.push(Buffer.from(c as Buffer));
    expect(Buffer.concat(back).equals(data)).toBe(true);
    // The writer gave back each chunk once written (the pool ignores the copied 3-byte end).
    expect(given).toBe(Math.ceil(data.length / READ_BYTES));
  });

  it('serves a reader that gives chunks back from a few reused buffers, and one that does not from new ones', async () => {
    const store = await fresh();
    const data = randomBytes(12 * 1024 * 1024 + 1);
    const k = '0123456789abcdef0123456789abcdef';
    await store.put(k, Readable.from([data]));
    const read = async (giveBack: boolean) => {
      const stream = await store.get(k);
      const recycle = recyclerOf(stream);
      expect(recycle).toBeTypeOf('function');
      const parts: Buffer[] = [];
      const buffers = new Set<ArrayBufferLike>();
      for await (const chunk of stream) {
        buffers.add((chunk as Buffer).buffer);
        parts.push(Buffer.from(chunk as Buffer)); // a copy: the chunk itself is given back
        if (giveBack) recycle?.(chunk as Buffer);
      }
      expect(Buffer.concat(parts).equals(data)).toBe(true);
      return { chunks: parts.length, buffers: buffers.size };
    };
    const kept = await read(false);
    expect(kept.buffers).toBe(kept.chunks);
    const given = await read(true);
    expect(given.chunks).toBe(Math.ceil(data.length / READ_BYTES));
    expect(given.buffers).toBeLessThanOrEqual(3);
  });

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
