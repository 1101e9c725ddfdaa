import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { EncryptPool, STAGE_BYTES } from './encrypt-pool.ts';
import { createSeipdV1Encryptor } from './seipd-v1.ts';
import { isAligned } from '../util/direct-io.ts';
import { recyclerOf } from '../util/recycle.ts';

const pool = new EncryptPool(2);
afterAll(() => pool.close());

async function collect(chunks: Buffer[], t: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), t, new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } }));
  return Buffer.concat(out);
}

/** Everything a stream outputs (written to separately). */
function drain(t: NodeJS.ReadableStream): Promise<Buffer> {
  const out: Buffer[] = [];
  return new Promise((resolve, reject) => {
    t.on('data', (c: Buffer) => out.push(c));
    t.on('end', () => resolve(Buffer.concat(out)));
    t.on('error', reject);
  });
}

/** The pieces the input reaches the worker in: all of it, cut every STAGE_BYTES. */
function staged(chunks: Buffer[]): Buffer[] {
  const all = Buffer.concat(chunks);
  const out: Buffer[] = [];
  for (let off = 0; off < all.length; off += STAGE_BYTES) out.push(all.subarray(off, off + STAGE_BYTES));
  return out;
}

describe('EncryptPool', () => {
  it('produces the same bytes as the in-thread encoder fed the pieces it moves to the worker', async () => {
    const sessionKey = randomBytes(32);
    const prefix = randomBytes(18);
    prefix[16] = prefix[14] as number;
    prefix[17] = prefix[15] as number;
    const date = new Date('2026-01-02T03:04:05Z');
    for (const sizes of [[0], [1], [511, 1], [70_000, 3, 5_000_000], Array.from({ length: 40 }, (_, i) => 1000 + i * 977)]) {
      const chunks = sizes.map((n) => randomBytes(n));
      const opts = { sessionKey, prefix, date, filename: 'a.bin' };
      // Copied input is gathered into STAGE_BYTES pieces: one message each, not one per chunk.
      const direct = await collect(staged(chunks), createSeipdV1Encryptor(opts));
      const pooled = await collect(chunks, pool.createEncryptor(opts));
      expect(pooled.equals(direct), `sizes ${sizes.slice(0, 3).join(',')}`).toBe(true);
      // The MDC's SHA-1 computed in this thread, the worker only encrypting: the same bytes.
      const hashedHere = await collect(chunks, pool.createEncryptor(opts, false));
      expect(hashedHere.equals(direct), `sizes ${sizes.slice(0, 3).join(',')}, MDC here`).toBe(true);
      // The in-flight bound of an upload's budget share, down to its floor (one staging buffer).
      let asked = 0;
      const bounded = await collect(chunks, pool.createEncryptor(opts, true, () => (asked++, 0)));
      expect(bounded.equals(direct), `sizes ${sizes.slice(0, 3).join(',')}, in-flight bound 0`).toBe(true);
      if (sizes.length > 1) expect(asked).toBeGreaterThan(0);
    }
  });

  it('reuses output buffers a consumer gives back once written, with the same bytes; others stay intact', async () => {
    const sessionKey = randomBytes(32);
    const prefix = Buffer.alloc(18, 2);
    const date = new Date('2026-01-02T03:04:05Z');
    const plain = Array.from({ length: 12 }, () => randomBytes(1024 * 1024));
    const direct = await collect(staged(plain), createSeipdV1Encryptor({ sessionKey, prefix, date }));
    const alignedPool = new EncryptPool(1, true);
    try {
      for (const [p, aligned] of [[pool, false], [alignedPool, true]] as const) {
        // A consumer like the blob store: hashes each chunk and gives it back (util/recycle.ts).
        const enc = p.createEncryptor({ sessionKey, prefix, date });
        const giveBack = recyclerOf(enc);
        expect(giveBack).toBeTypeOf('function');
        const hash = createHash('sha256');
        let bytes = 0;
        let kept = 0;
        const sizes: number[] = [];
        const alignment: boolean[] = [];
        await pipeline(Readable.from(plain), enc, new Writable({
          write(c: Buffer, _e, cb) {
            hash.update(c);
            bytes += c.length;
            sizes.push(c.length);
            alignment.push(isAligned(c));
            giveBack?.(c);
            if (c.length !== 0) kept++; // a pooled chunk moved back to the worker: detached here
            cb();
          },
        }));
        // Only the stream's first output buffer, a small one of its own, is not pooled.
        expect(kept, `aligned ${aligned}`).toBe(1);
        expect(bytes).toBe(direct.length);
        expect(hash.digest('hex')).toBe(createHash('sha256').update(direct).digest('hex'));
        expect(enc.reusedChunks).toBeGreaterThan(0);
        const middle = sizes.slice(1, -1);
        if (aligned) {
          // Exactly 1 MiB in page-aligned memory: they go to the disk with O_DIRECT as they are.
          expect(middle.every((n) => n === 1024 * 1024)).toBe(true);
          expect(alignment.slice(1, -1).every(Boolean)).toBe(true);
        } else {
          // Gathered to 1 MiB or a little more: sizes off the page grid (see OUT_CAP).
          expect(middle.every((n) => n >= 1024 * 1024 && n <= 1.25 * 1024 * 1024)).toBe(true);
          expect(middle.some((n) => n % 4096 !== 0)).toBe(true);
        }
      }
    } finally {
      await alignedPool.close();
    }
    // A consumer that keeps its chunks (the first test's collect) is unaffected: covered above.
  });

  it('reuses the staging buffers the worker gives back, with the same bytes', async () => {
    const sessionKey = randomBytes(32);
    const prefix = Buffer.alloc(18, 3);
    const date = new Date('2026-01-02T03:04:05Z');
    // Odd-sized chunks: the framing holds back part of nearly every staged piece, and a reused
    // buffer is overwritten while it does (unless the worker copied that part first).
    const plain = Array.from({ length: 60 }, (_, i) => randomBytes(100_000 + i * 1_001));
    const direct = await collect(staged(plain), createSeipdV1Encryptor({ sessionKey, prefix, date }));
    for (const mdcInWorker of [true, false]) {
      const before = pool.reusedStages;
      const pooled = await collect(plain, pool.createEncryptor({ sessionKey, prefix, date }, mdcInWorker));
      expect(pooled.equals(direct), `mdcInWorker ${mdcInWorker}`).toBe(true);
      expect(pool.reusedStages - before).toBeGreaterThan(10);
    }
  });

  it('copies the input into staging buffers: the caller\'s buffers stay intact, the bytes are the same', async () => {
    const sessionKey = randomBytes(32);
    const prefix = Buffer.alloc(18, 1);
    const date = new Date('2026-01-02T03:04:05Z');
    const plain = [randomBytes(300_000), randomBytes(70_000), randomBytes(100), randomBytes(200), randomBytes(80_000), randomBytes(50)];
    // The worker sees the input in pieces of STAGE_BYTES (and the rest at the end).
    const all = Buffer.concat(plain);
    const pieces: Buffer[] = [];
    for (let off = 0; off < all.length; off += STAGE_BYTES) pieces.push(all.subarray(off, off + STAGE_BYTES));
    const direct = await collect(pieces, createSeipdV1Encryptor({ sessionKey, prefix, date }));
    for (const mdcInWorker of [true, false]) {
      const input = plain.map((b) => Buffer.from(b));
      const pooled = await collect(input, pool.createEncryptor({ sessionKey, prefix, date }, mdcInWorker));
      expect(pooled.equals(direct), `mdcInWorker ${mdcInWorker}`).toBe(true);
      expect(input.every((b, i) => b.equals(plain[i] as Buffer)), 'nothing was moved away or changed').toBe(true);
    }
  });

  it('moves a staging buffer of the pool written whole, copies one behind a partial piece, and gives that one back', async () => {
    const sessionKey = randomBytes(32);
    const prefix = Buffer.alloc(18, 4);
    const date = new Date('2026-01-02T03:04:05Z');
    const fill = (n: number) => {
      const b = pool.staging.take();
      expect(b.length).toBe(STAGE_BYTES);
      randomBytes(n).copy(b);
      return n === STAGE_BYTES ? b : b.subarray(0, n);
    };
    for (const mdcInWorker of [true, false]) {
      // Whole staging buffers (as Upload.write passes them on), then a partial last one.
      const whole = [fill(STAGE_BYTES), fill(STAGE_BYTES), fill(1000)];
      const plain = whole.map((b) => Buffer.from(b));
      const enc = pool.createEncryptor({ sessionKey, prefix, date }, mdcInWorker);
      const out = drain(enc);
      for (const b of whole) enc.write(b);
      await tick();
      // Moved to the worker, not copied: their memory is gone from this thread.
      expect(whole.map((b) => b.buffer.byteLength)).toEqual([0, 0, 0]);
      enc.end();
      const direct = await collect(plain, createSeipdV1Encryptor({ sessionKey, prefix, date }));
      expect((await out).equals(direct), `mdcInWorker ${mdcInWorker}`).toBe(true);

      // A foreign buffer starts a partial piece; the staging buffer after it is copied behind
      // that piece (the worker's pieces stay STAGE_BYTES) and goes back to the pool at once.
      const foreign = randomBytes(100);
      const behind = fill(STAGE_BYTES);
      const plain2 = [Buffer.from(foreign), Buffer.from(behind)];
      const enc2 = pool.createEncryptor({ sessionKey, prefix, date }, mdcInWorker);
      const out2 = drain(enc2);
      enc2.write(foreign);
      enc2.write(behind);
      await tick();
      expect(foreign.equals(plain2[0] as Buffer), 'a foreign buffer is neither moved nor changed').toBe(true);
      expect(behind.buffer.byteLength).toBe(STAGE_BYTES);
      const free = Array.from({ length: 20 }, () => pool.staging.take());
      expect(free.some((b) => b.buffer === behind.buffer), 'given back to the pool').toBe(true);
      enc2.end();
      expect((await out2).equals(await collect(staged(plain2), createSeipdV1Encryptor({ sessionKey, prefix, date })))).toBe(true);
    }
  });

  it('lets the writer go on when a read makes room and nothing else is in flight (no lost wake-up)', async () => {
    // An in-flight bound of 0 is clamped to one staging buffer (256 KiB); output comes in ~1 MiB
    // chunks. Once one waits unread, the writer waits on it alone: the read must release it.
    const enc = pool.createEncryptor({ sessionKey: randomBytes(32) }, true, () => 0);
    let completed = 0;
    for (let i = 0; i < 24; i++) enc.write(randomBytes(STAGE_BYTES), () => completed++);
    const until = async (cond: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 500 && !cond(); i++) await sleep(10);
      if (!cond()) throw new Error(`timed out waiting for ${what}`);
    };
    await until(() => enc.readableLength >= 1024 * 1024, 'the first output chunk');
    await sleep(100); // every ack is in: the unread output is all that holds the writer
    const before = completed;
    expect(before).toBeLessThan(24);
    while (enc.read() !== null);
    await until(() => completed > before, 'the writer to go on after the read');
    enc.destroy();
  });

  it('runs several streams at once and reports encoder errors', async () => {
    const key = randomBytes(32);
    const results = await Promise.all(
      [1, 2, 3, 4].map(async (i) => (await collect([randomBytes(300_000 * i)], pool.createEncryptor({ sessionKey: key }))).length),
    );
    expect(results.every((n, i) => n > 300_000 * (i + 1))).toBe(true);
    await expect(collect([Buffer.from('x')], pool.createEncryptor({ sessionKey: randomBytes(5) }))).rejects.toThrow(/encryption failed/);
  });

  it('aborts a stream without disturbing the others', async () => {
    const key = randomBytes(32);
    const doomed = pool.createEncryptor({ sessionKey: key });
    const failed = new Promise((resolve) => doomed.on('error', resolve));
    doomed.write(randomBytes(100_000));
    doomed.destroy(new Error('client gone'));
    expect(((await failed) as Error).message).toBe('client gone');
    const ok = await collect([randomBytes(100_000)], pool.createEncryptor({ sessionKey: key }));
    expect(ok.length).toBeGreaterThan(100_000);
  });
});
