import { mkdtempSync, writeFileSync, readdirSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomFillSync } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { runBlobStoreContract } from './blob-store.contract.ts';
import { FsBlobStore, READ_BYTES } from './fs-blob-store.ts';
import { EncryptPool, STAGE_BYTES } from '../crypto/encrypt-pool.ts';
import { createSeipdV1Encryptor } from '../crypto/seipd-v1.ts';
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
runBlobStoreContract('FsBlobStore with direct writes', () => fresh({ directWrites: true }));

const MiB = 1024 * 1024;
/** `n` random bytes whose memory starts at a multiple of DIRECT_ALIGN (`aligned`) or not. */
function piece(n: number, aligned: boolean): Buffer {
  const b = aligned ? (allocAligned(n) as Buffer) : (allocAligned(n + 1) as Buffer).subarray(1);
  return randomFillSync(b);
}

describe('FsBlobStore direct writes (O_DIRECT)', () => {
  it('are on when asked for where the filesystem takes them (the tests\' temporary folder), else off', async () => {
    const store = await fresh({ directWrites: true });
    const status = store.directWrites;
    expect(status, `O_DIRECT writes in ${os.tmpdir()}: ${'reason' in status ? status.reason : ''}`).toEqual({ on: true });
    // The probe file is gone.
    expect(readdirSync(path.join(store.root, 'tmp'))).toEqual([]);
    expect((await fresh()).directWrites).toEqual({ on: false, reason: 'not asked for (storage.directWrites: false)' });
    expect(new FsBlobStore(store.root, { directWrites: true }).directWrites).toMatchObject({ on: false, reason: 'init() has not run' });
  });

  it('store and read back the same bytes whatever the alignment and sizes of the chunks, and give each whole chunk back', async () => {
    const store = await fresh({ directWrites: true });
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

  it('store the encryption pool\'s output, aligned (as it is) or not (copied), the same bytes as the encoder in this thread', async () => {
    const store = await fresh({ directWrites: true });
    for (const pool of [new EncryptPool(1, true), new EncryptPool(1, false)]) try {
      const options = { sessionKey: randomBytes(32), prefix: Buffer.alloc(18, 7), date: new Date('2026-01-02T03:04:05Z') };
      for (const size of [0, 5000, 3 * MiB + 17]) {
        const plain = randomBytes(size);
        const pieces: Buffer[] = [];
        for (let off = 0; off < size; off += STAGE_BYTES) pieces.push(plain.subarray(off, off + STAGE_BYTES));
        const expected: Buffer[] = [];
        await pipeline(Readable.from(pieces), createSeipdV1Encryptor(options), new Writable({ write(c: Buffer, _e, cb) { expected.push(c); cb(); } }));
        const key = randomBytes(16).toString('hex');
        const enc = pool.createEncryptor(options);
        const put = store.put(key, enc);
        await pipeline(Readable.from([plain]), enc).catch(() => undefined);
        const info = await put;
        const back: Buffer[] = [];
        for await (const c of await store.get(key)) back.push(Buffer.from(c as Buffer));
        expect(info.size, `${size} bytes`).toBe(Buffer.concat(expected).length);
        expect(Buffer.concat(back).equals(Buffer.concat(expected)), `${size} bytes`).toBe(true);
      }
    } finally {
      await pool.close();
    }
  });

  it('a reader stopped with a read ahead in flight closes cleanly, either way', async () => {
    for (const directWrites of [true, false]) {
      const store = await fresh({ directWrites });
      const key = randomBytes(16).toString('hex');
      await store.put(key, Readable.from([randomBytes(6 * MiB + 3)]));
      const stream = await store.get(key);
      const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve));
      expect(first.length).toBe(READ_BYTES);
      stream.destroy();
      await new Promise((resolve) => stream.once('close', resolve));
      // The blob can be removed and read again: nothing holds it.
      const again: Buffer[] = [];
      for await (const c of await store.get(key)) again.push(Buffer.from(c as Buffer));
      expect(Buffer.concat(again).length).toBe(6 * MiB + 3);
      await store.delete(key);
      expect(await store.stat(key)).toBeUndefined();
    }
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
