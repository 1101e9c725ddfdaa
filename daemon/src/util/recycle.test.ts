import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BufferPool, lendsChunks, recyclerOf } from './recycle.ts';

describe('BufferPool', () => {
  it('lends a buffer again only after it was given back, once', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.take();
    const b = pool.take();
    expect(a.length).toBe(1024);
    expect(a.buffer).not.toBe(b.buffer);
    pool.give(a.subarray(0, 10));
    pool.give(a.subarray(0, 10)); // twice: ignored, or two readers would share it
    const c = pool.take();
    expect(c.buffer).toBe(a.buffer);
    expect(c.length).toBe(1024);
    expect(pool.take().buffer).not.toBe(a.buffer);
  });

  it('ignores foreign chunks, views that do not start at a buffer, and keeps at most `keep` free', () => {
    const pool = new BufferPool(64, 1);
    const a = pool.take();
    pool.give(Buffer.alloc(64));
    pool.give(a.subarray(1));
    expect(pool.take().buffer).not.toBe(a.buffer);
    const x = pool.take();
    const y = pool.take();
    pool.give(x);
    pool.give(y);
    const first = pool.take();
    expect(first.buffer).toBe(x.buffer);
    expect(pool.take().buffer).not.toBe(y.buffer);
  });

  it('takes nothing back after clear()', () => {
    const pool = new BufferPool(64, 4);
    const a = pool.take();
    pool.clear();
    pool.give(a);
    expect(pool.take().buffer).not.toBe(a.buffer);
  });
});

describe('lendsChunks', () => {
  it('marks a stream and its recycler; other streams have none', () => {
    const give = (_: Buffer) => undefined;
    expect(recyclerOf(lendsChunks(Readable.from([]), give))).toBe(give);
    expect(recyclerOf(Readable.from([]))).toBeUndefined();
  });
});
