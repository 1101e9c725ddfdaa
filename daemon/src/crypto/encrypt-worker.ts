/**
 * Worker thread body of the encryption pool: runs one SEIPDv1 encoder per stream id, fed with
 * plaintext chunks from the main thread, and posts ciphertext back gathered into ~1 MiB
 * buffers (transferred, not copied), which the main thread gives back once they are written
 * (util/recycle.ts); the encoder hands its output over synchronously from one reused buffer.
 * Acknowledges each input chunk once the encoder took it; a staging buffer
 * goes back with its ack, so no buffer is dropped here (see StageBuffers in encrypt-pool.ts).
 */
import { parentPort } from 'node:worker_threads';
import { allocAligned, alignedView, DIRECT_ALIGN } from '../util/direct-io.ts';
import { createSeipdV1Encryptor, type SeipdV1Encryptor } from './seipd-v1.ts';
import type { ToWorker } from './encrypt-pool.ts';

/**
 * A pooled output buffer: posted once full (or at the end). Its memory starts at a multiple of
 * DIRECT_ALIGN where the direct-io addon is built (util/direct-io.ts), so a full one goes to
 * the disk with O_DIRECT as it is.
 */
const OUT_CHUNK = 1024 * 1024;
/**
 * A stream's first output buffer when no pooled one is free: small, so that many uploads of
 * small files at once do not hold a pooled buffer each; posted when full, like the others.
 */
const FIRST_CAP = 64 * 1024;
/** Output buffers the main thread gave back once written, for the next streams' output. */
const free: ArrayBuffer[] = [];
const FREE_KEEP = 8;

/** The output buffer a stream is filling, and how much of it. */
interface Output {
  out: Buffer | null;
  outLength: number;
  /** Whether `out` came back from the main thread (counted there, for tests). */
  reused: boolean;
  /** Whether this stream has had an output buffer yet. */
  started: boolean;
}

interface StreamState {
  enc: SeipdV1Encryptor;
  output: Output;
}

const streams = new Map<number, StreamState>();
const port = parentPort;
if (!port) throw new Error('encrypt-worker must run in a worker thread');

/** Copies encoder output into the stream's output buffer, posting each full one. */
function take(id: number, s: Output, unit: Uint8Array): void {
  for (let offset = 0; offset < unit.length; ) {
    if (s.out === null) {
      const reused = free.pop();
      s.reused = reused !== undefined;
      s.out = reused ? outputView(reused) : newOutput(s.started ? OUT_CHUNK : FIRST_CAP);
      s.outLength = 0;
      s.started = true;
    }
    const n = Math.min(unit.length - offset, s.out.length - s.outLength);
    s.out.set(offset === 0 && n === unit.length ? unit : unit.subarray(offset, offset + n), s.outLength);
    s.outLength += n;
    offset += n;
    if (s.outLength === s.out.length) post(id, s);
  }
}

/** A new output buffer of `size` bytes, aligned if it can be. */
function newOutput(size: number): Buffer {
  return allocAligned(size) ?? Buffer.allocUnsafeSlow(size);
}

/** The output buffer in a pooled ArrayBuffer that came back (made by newOutput(OUT_CHUNK)). */
function outputView(buffer: ArrayBuffer): Buffer {
  return alignedView(buffer, OUT_CHUNK) ?? Buffer.from(buffer, 0, OUT_CHUNK);
}

/** Whether an ArrayBuffer holds a pooled output buffer. */
function isPooled(buffer: ArrayBuffer): boolean {
  return buffer.byteLength === OUT_CHUNK || buffer.byteLength === OUT_CHUNK + DIRECT_ALIGN;
}

/** Moves the filled part of the output buffer to the main thread, which gives it back once written. */
function post(id: number, s: Output): void {
  if (s.out === null || s.outLength === 0) return;
  const backing = s.out.buffer as ArrayBuffer;
  const chunk = s.out.subarray(0, s.outLength);
  const reused = s.reused;
  s.out = null;
  s.outLength = 0;
  port?.postMessage({ t: 'out', id, chunk, pooled: isPooled(backing), reused }, [backing]);
}

function giveBack(buffer: ArrayBuffer): void {
  if (free.length < FREE_KEEP && isPooled(buffer)) free.push(buffer);
}

/** A failed or aborted stream's output buffer goes back to the pool unsent. */
function drop(s: Output): void {
  if (s.out) giveBack(s.out.buffer as ArrayBuffer);
  s.out = null;
  s.outLength = 0;
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'open': {
      try {
        const output: Output = { out: null, outLength: 0, reused: false, started: false };
        // The encoder hands its output over synchronously (its ciphertext buffer is reused), and
        // it is copied straight into the output buffer: no buffer per 64 KiB in this thread.
        const enc = createSeipdV1Encryptor({ sessionKey: m.sessionKey, filename: m.filename, externalMdc: m.externalMdc, sink: (unit) => take(m.id, output, unit), ...(m.date !== undefined ? { date: new Date(m.date) } : {}), ...(m.prefix ? { prefix: m.prefix } : {}) });
        streams.set(m.id, { enc, output });
        enc.on('end', () => {
          post(m.id, output);
          streams.delete(m.id);
          port.postMessage({ t: 'done', id: m.id });
        });
        enc.on('error', (err: Error) => {
          streams.delete(m.id);
          drop(output);
          port.postMessage({ t: 'error', id: m.id, message: err.message });
        });
        enc.resume(); // the readable side carries nothing, but must flow to end
      } catch (err) {
        port.postMessage({ t: 'error', id: m.id, message: (err as Error).message });
      }
      return;
    }
    case 'data': {
      const s = streams.get(m.id);
      if (!s) return;
      const { chunk } = m;
      const len = chunk.length;
      s.enc.write(Buffer.from(chunk.buffer, chunk.byteOffset, len), () => {
        // The encoder took the chunk; what its framing still holds of it is copied, and the
        // buffer goes back for the next piece.
        s.enc.detachInput();
        const buffer = chunk.buffer as ArrayBuffer;
        port.postMessage({ t: 'ack', id: m.id, bytes: len, buffer }, [buffer]);
      });
      return;
    }
    case 'end': {
      const s = streams.get(m.id);
      if (m.mdc) s?.enc.endWithMdc(m.mdc);
      else s?.enc.end();
      return;
    }
    case 'return':
      giveBack(m.buffer);
      return;
    case 'abort': {
      const s = streams.get(m.id);
      streams.delete(m.id);
      s?.enc.destroy();
      if (s) drop(s.output);
      return;
    }
  }
});
