/**
 * Response bodies whose chunks are lent (util/recycle.ts): written to the socket by this
 * listener instead of Koa's pipe, each with a write callback, so a chunk goes back to its stream
 * once the socket is done with it — and with it the allocation of a new buffer per chunk.
 */
import { Readable } from 'node:stream';
import type { Context } from 'koa';
import { recyclerOf } from '../../util/recycle.ts';

/** Chunks handed to the socket and not yet written, at most (back-pressure). */
const IN_FLIGHT = 4;
/** Statuses without a body (Koa drops the body of these). */
const EMPTY = new Set([204, 205, 304]);

/**
 * Takes over the response if its body is a stream that lends its chunks: Koa does not respond
 * then. Called last, when headers and status are final. Returns whether it took over.
 */
export function respondWithLentBody(ctx: Context): boolean {
  const body = ctx.body;
  if (!(body instanceof Readable) || ctx.respond === false || ctx.method === 'HEAD' || !ctx.writable || EMPTY.has(ctx.status)) return false;
  const giveBack = recyclerOf(body);
  if (!giveBack) return false;
  ctx.respond = false;
  const res = ctx.res;
  let inFlight = 0;
  const written = (chunk: Buffer) => (err?: Error | null) => {
    inFlight--;
    // A failed write may still be referenced by the socket's queue: the chunk is not given back.
    if (err) return;
    giveBack(chunk);
    if (inFlight < IN_FLIGHT && body.isPaused() && !body.destroyed) body.resume();
  };
  body.on('data', (chunk: Buffer) => {
    inFlight++;
    res.write(chunk, written(chunk));
    if (inFlight >= IN_FLIGHT) body.pause();
  });
  body.once('end', () => res.end());
  body.once('error', (err: Error) => {
    ctx.app.emit('error', err, ctx);
    res.destroy();
  });
  // The client went away (or the socket failed): stop reading, release the file.
  res.once('close', () => {
    if (!body.destroyed) body.destroy();
  });
  return true;
}
