/**
 * Request bodies on the HTTP listener (API, UI and WebDAV).
 *
 * A consumer that fails half-way through a body (a size limit, a wrong state) must not take the
 * connection down with it: destroying the IncomingMessage destroys its socket, and the client
 * then sees a reset instead of the error. So consumers read a detached copy of the stream, and
 * the listener settles whatever is left unread before it answers: it discards a bounded rest so
 * the answer arrives and the connection stays usable, or says `Connection: close` when the rest
 * is too large or too slow.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import type { Context } from 'koa';
import { fail } from '../../core/errors.ts';

/** How much of an unread body is discarded before an answer, at most. */
export const SETTLE_MAX_BYTES = 16 * 1024 * 1024;
/** How long discarding an unread body may delay an answer, at most. */
export const SETTLE_MAX_MS = 3000;

/**
 * The request body as a stream the consumer may destroy without closing the connection. It
 * fails with SEALDROP_E_ABORTED when the client goes away before the body is complete.
 */
export function detachedBody(req: IncomingMessage): Readable {
  const body = new PassThrough({ highWaterMark: 64 * 1024 });
  // The consumer may attach only after some awaits (authentication, database): an error before
  // that must not go unhandled (it would end the process). It is not lost: the stream stays
  // errored, and pipeline() or iteration over it fails with it.
  body.on('error', () => undefined);
  const onClose = () => {
    if (!req.complete) body.destroy(fail('SEALDROP_E_ABORTED', 'the client closed the connection before the body was complete'));
  };
  // The client may have gone while the request waited (authentication, database): no event
  // will come any more, so the body fails now instead of waiting forever.
  if (!req.complete && (req.destroyed || req.closed || req.readableAborted)) {
    onClose();
    return body;
  }
  const onError = (err: Error) => body.destroy(err);
  req.once('close', onClose);
  req.once('error', onError);
  body.once('close', () => {
    req.off('close', onClose);
    req.off('error', onError);
  });
  req.pipe(body);
  return body;
}

/** Whether the request announces a body (a length above zero or a transfer coding). */
export function hasBody(ctx: Context): boolean {
  return Number(ctx.get('content-length') || 0) > 0 || Boolean(ctx.get('transfer-encoding'));
}

/**
 * Before an answer goes out: discards what is left of the request body, within SETTLE_MAX_BYTES
 * and SETTLE_MAX_MS; past either (or for a declared rest larger than that), the answer says
 * `Connection: close` and the connection ends after it.
 */
export async function settleUnreadBody(ctx: Context): Promise<void> {
  const req = ctx.req;
  if (req.complete || req.destroyed || !req.socket || ctx.res.headersSent || !hasBody(ctx)) return;
  const close = () => {
    if (!ctx.res.headersSent) ctx.set('Connection', 'close');
  };
  const declared = Number(ctx.get('content-length') || NaN);
  if (Number.isFinite(declared) && declared > SETTLE_MAX_BYTES) {
    close();
    return;
  }
  req.unpipe();
  await new Promise<void>((resolve) => {
    let seen = 0;
    const done = (keep: boolean) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onEnd);
      if (!keep) {
        req.pause();
        close();
      }
      resolve();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > SETTLE_MAX_BYTES) done(false);
    };
    const onEnd = () => done(true);
    const timer = setTimeout(() => done(false), SETTLE_MAX_MS);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('close', onEnd);
    req.resume();
  });
}
