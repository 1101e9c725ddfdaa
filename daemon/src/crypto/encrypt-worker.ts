/**
 * Worker thread body of the encryption pool: runs one SEIPDv1 encoder per stream id, fed with
 * plaintext chunks from the main thread, and posts ciphertext back gathered into ~1 MiB
 * buffers (transferred, not copied), which the main thread gives back once they are written
 * (util/recycle.ts); the encoder hands its output over synchronously from one reused buffer.
 * Acknowledges each input chunk once the encoder took it; a staging buffer
 * goes back with its ack, so no buffer is dropped here (see StageBuffers in encrypt-pool.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { allocAligned, alignedView, DIRECT_ALIGN } from '../util/direct-io.ts';
import { createSeipdV1Encryptor, type SeipdV1Encryptor } from './seipd-v1.ts';
import type { EncryptWorkerData, ToWorker } from './encrypt-pool.ts';

const OUT_CHUNK = 1024 * 1024;
/**
 * Capacity of a pooled output buffer. Gathered output (the default) is posted once it holds
 * OUT_CHUNK bytes or more: the margin lets most encoder output go in whole, and the chunks come
 * in sizes that are not multiples of the page size. Aligned output (`aligned`, for a blob store
 * that writes with O_DIRECT) fills buffers of exactly OUT_CHUNK bytes whose memory starts at a
 * multiple of DIRECT_ALIGN (util/direct-io.ts), so each full one goes to the disk as it is.
 *
 * Why not aligned always: on this VM, 1 MiB writes through the page cache at page-aligned file
 * offsets cost 2.4-2.6 s of system CPU per GiB (the kernel caches them in large folios, whose
 * memory comes back from the host each time), against 0.31-0.34 s for the same writes at any
 * other offsets (Python, 1 GiB files written and deleted in turn; daemon/bench/README.md).
 */
const OUT_CAP = OUT_CHUNK + 256 * 1024;
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

/** Whether output buffers are aligned and filled to exactly OUT_CHUNK (see OUT_CAP). */
const aligned = (workerData as EncryptWorkerData | null)?.aligned === true;

const streams = new Map<number, StreamState>();
const port = parentPort;
if (!port) throw new Error('encrypt-worker must run in a worker thread');

/** Copies encoder output into the stream's output buffer, posting each full one. */
function take(id: number, s: Output, unit: Uint8Array): void {
  for (let offset = 0; offset < unit.length; ) {
    if (s.out === null) {
      const reused = free.pop();
      s.reused = reused !== undefined;
      s.out = reused ? outputView(reused) : newOutput(s.started ? (aligned ? OUT_CHUNK : OUT_CAP) : FIRST_CAP);
      s.outLength = 0;
      s.started = true;
    }
    const n = Math.min(unit.length - offset, s.out.length - s.outLength);
    s.out.set(offset === 0 && n === unit.length ? unit : unit.subarray(offset, offset + n), s.outLength);
    s.outLength += n;
    offset += n;
    if (s.outLength >= Math.min(OUT_CHUNK, s.out.length)) post(id, s);
  }
}

/** A new output buffer of `size` bytes, aligned in aligned mode (if the addon is built). */
function newOutput(size: number): Buffer {
  return (aligned ? allocAligned(size) : null) ?? Buffer.allocUnsafeSlow(size);
}

/** The output buffer in a pooled ArrayBuffer that came back. */
function outputView(buffer: ArrayBuffer): Buffer {
  if (buffer.byteLength === OUT_CAP) return Buffer.from(buffer);
  return alignedView(buffer, OUT_CHUNK) ?? Buffer.from(buffer, 0, OUT_CHUNK);
}

/** Whether an ArrayBuffer holds a pooled output buffer of the current mode. */
function isPooled(buffer: ArrayBuffer): boolean {
  return aligned ? buffer.byteLength === OUT_CHUNK || buffer.byteLength === OUT_CHUNK + DIRECT_ALIGN : buffer.byteLength === OUT_CAP;
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
