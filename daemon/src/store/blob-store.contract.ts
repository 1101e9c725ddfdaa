/**
 * The BlobStore contract: every backend runs this suite (`runBlobStoreContract(name, factory)`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isSealdropError } from '../core/errors.ts';
import { recyclerOf } from '../util/recycle.ts';
import type { BlobStore } from './blob-store.ts';

const key = () => randomBytes(16).toString('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

function failingStream(bytesBeforeError: number): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(Buffer.alloc(bytesBeforeError, 7));
      } else {
        this.destroy(new Error('client went away'));
      }
    },
  });
}

/** Runs the contract suite against a fresh store from `create()`. */
export function runBlobStoreContract(name: string, create: () => Promise<BlobStore>): void {
  describe(`BlobStore contract: ${name}`, () => {
    it('stores and returns bytes with their size', async () => {
      const store = await create();
      const data = randomBytes(300_000);
      const k = key();
      const info = await store.put(k, Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
      expect(info.size).toBe(data.length);
      expect((await store.stat(k))?.size).toBe(data.length);
      expect((await readAll(await store.get(k))).equals(data)).toBe(true);
    });

    it('reads a blob after a head, and the same bytes when the consumer gives chunks back', async () => {
      const store = await create();
      const data = randomBytes(3 * 1024 * 1024 + 5);
      const k = key();
      await store.put(k, Readable.from([data]));
      const head = Buffer.from('head bytes');
      expect((await readAll(await store.get(k, { head }))).equals(Buffer.concat([head, data]))).toBe(true);
      // A consumer that gives every chunk back once it is done with it (util/recycle.ts).
      const stream = await store.get(k, { head });
      const giveBack = recyclerOf(stream);
      const hash = createHash('sha256');
      for await (const chunk of stream) {
        hash.update(chunk as Buffer);
        giveBack?.(chunk as Buffer);
      }
      expect(hash.digest('hex')).toBe(createHash('sha256').update(head).update(data).digest('hex'));
      const empty = key();
      await store.put(empty, Readable.from([]));
      expect((await readAll(await store.get(empty, { head }))).equals(head)).toBe(true);
    });

    it('stores an empty blob', async () => {
      const store = await create();
      const k = key();
      expect((await store.put(k, Readable.from([]))).size).toBe(0);
      expect((await readAll(await store.get(k))).length).toBe(0);
    });

    it('refuses to overwrite an existing key', async () => {
      const store = await create();
      const k = key();
      await store.put(k, Readable.from([Buffer.from('a')]));
      await expect(store.put(k, Readable.from([Buffer.from('b')]))).rejects.toSatisfy((e) => isSealdropError(e, 'SEALDROP_E_CONFLICT'));
      expect((await readAll(await store.get(k))).toString()).toBe('a');
    });

    it('leaves nothing behind when the source fails', async () => {
      const store = await create();
      const k = key();
      await expect(store.put(k, failingStream(70_000))).rejects.toThrow('client went away');
      expect(await store.stat(k)).toBeUndefined();
      const keys: string[] = [];
      for await (const x of store.list()) keys.push(x);
      expect(keys).not.toContain(k);
      expect(await store.cleanup(0)).toBe(0);
    });

    it('leaves nothing behind when aborted', async () => {
      const store = await create();
      const k = key();
      const ac = new AbortController();
      const slow = new Readable({ read() {} });
      slow.push(Buffer.alloc(1000));
      const p = store.put(k, slow, { signal: ac.signal });
      setTimeout(() => ac.abort(), 20);
      await expect(p).rejects.toThrow();
      expect(await store.stat(k)).toBeUndefined();
    });

    it('reports a missing blob as not found, deletes idempotently, lists keys', async () => {
      const store = await create();
      const k = key();
      await expect(store.get(k)).rejects.toSatisfy((e) => isSealdropError(e, 'SEALDROP_E_NOT_FOUND'));
      await store.put(k, Readable.from([Buffer.from('x')]));
      const keys: string[] = [];
      for await (const x of store.list()) keys.push(x);
      expect(keys).toContain(k);
      await store.delete(k);
      await store.delete(k);
      expect(await store.stat(k)).toBeUndefined();
    });

    it('rejects keys that are not 32 hex digits', async () => {
      const store = await create();
      await expect(store.get('../../etc/passwd')).rejects.toThrow();
      await expect(store.put('AB', Readable.from([]))).rejects.toThrow();
    });
  });
}
