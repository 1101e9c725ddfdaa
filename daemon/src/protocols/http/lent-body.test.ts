import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { BufferPool, lendsChunks } from '../../util/recycle.ts';
import { respondWithLentBody } from './lent-body.ts';

const CHUNK = 64 * 1024;

/** A stream of `chunks` pooled chunks, each filled with its index; counts what comes back. */
function lending(chunks: number, failAt?: number) {
  const pool = new BufferPool(CHUNK, 16);
  const seen = new Set<ArrayBufferLike>();
  const state = { given: 0, buffers: 0, closed: false };
  let i = 0;
  const stream = new Readable({
    read() {
      if (i === failAt) return this.destroy(new Error('the disk failed'));
      if (i === chunks) return this.push(null);
      const buf = pool.take();
      seen.add(buf.buffer);
      state.buffers = seen.size;
      this.push(buf.fill(i++ & 0xff));
    },
  });
  stream.once('close', () => (state.closed = true));
  lendsChunks(stream, (chunk) => {
    state.given++;
    pool.give(chunk);
  });
  return { stream, state };
}

function expected(chunks: number): string {
  const hash = createHash('sha256');
  for (let i = 0; i < chunks; i++) hash.update(Buffer.alloc(CHUNK, i & 0xff));
  return hash.digest('hex');
}

let server: http.Server | undefined;
afterEach(() => server?.close());

async function serve(body: () => Readable, errors: Error[] = []): Promise<number> {
  const app = new Koa();
  app.silent = true;
  app.on('error', (err: Error) => errors.push(err));
  app.use(async (ctx, next) => {
    await next();
    respondWithLentBody(ctx);
  });
  app.use((ctx) => {
    ctx.status = 200;
    ctx.body = body();
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server?.once('listening', resolve));
  return (server.address() as AddressInfo).port;
}

function get(port: number, onData?: (res: http.IncomingMessage, received: number) => void): Promise<{ sha256: string; bytes: number; error?: string }> {
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    let bytes = 0;
    const req = http.get({ host: '127.0.0.1', port, path: '/' }, (res) => {
      res.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
        onData?.(res, bytes);
      });
      res.on('end', () => resolve({ sha256: hash.digest('hex'), bytes }));
      res.on('error', (err) => resolve({ sha256: '', bytes, error: err.message }));
      res.on('close', () => resolve({ sha256: '', bytes, error: 'closed before the end' }));
    });
    req.on('error', (err) => resolve({ sha256: '', bytes, error: err.message }));
  });
}

describe('respondWithLentBody', () => {
  it('sends every byte and gives each chunk back, so a few buffers carry the whole body', async () => {
    let made: ReturnType<typeof lending> | undefined;
    const port = await serve(() => (made = lending(200)).stream);
    const got = await get(port);
    expect(got.bytes).toBe(200 * CHUNK);
    expect(got.sha256).toBe(expected(200));
    const state = made?.state;
    await expect.poll(() => state?.given, { timeout: 10_000 }).toBe(200);
    // At most IN_FLIGHT chunks at the socket, plus the stream's own buffering.
    expect(state?.buffers).toBeLessThanOrEqual(8);
  });

  it('stops reading and closes the stream when the client goes away', async () => {
    let made: ReturnType<typeof lending> | undefined;
    const port = await serve(() => (made = lending(100_000)).stream);
    const got = await get(port, (res, received) => {
      if (received > 4 * CHUNK) res.destroy();
    });
    expect(got.bytes).toBeLessThan(100_000 * CHUNK);
    await expect.poll(() => made?.state.closed, { timeout: 10_000 }).toBe(true);
  });

  it('cuts the response off when the stream fails, and reports the error', async () => {
    const errors: Error[] = [];
    const port = await serve(() => lending(50, 10).stream, errors);
    const got = await get(port);
    expect(got.error ?? 'ended').not.toBe('ended');
    expect(got.bytes).toBeLessThan(50 * CHUNK);
    expect(errors.map((e) => e.message)).toEqual(['the disk failed']);
  });
});
