/**
 * Worker thread body of the encryption pool: runs one SEIPDv1 encoder per stream id, fed with
 * plaintext chunks from the main thread, and posts ciphertext back gathered into ~1 MiB
 * buffers (transferred, not copied), which the main thread gives back once they are written
 * (util/recycle.ts). Acknowledges each input chunk once the encoder took it; a staging buffer
 * goes back with its ack, so no buffer is dropped here (see StageBuffers in encrypt-pool.ts).
 */
import { parentPort } from 'node:worker_threads';
import { createSeipdV1Encryptor, type SeipdV1Encryptor } from './seipd-v1.ts';
import type { ToWorker } from './encrypt-pool.ts';

const OUT_CHUNK = 1024 * 1024;
/**
 * Capacity of a pooled output buffer: a flush carries at least OUT_CHUNK bytes (but the last)
 * and less than OUT_CHUNK plus one encoder output chunk (at most 64 KiB); a larger one would get
 * a buffer of its own.
 */
const OUT_CAP = OUT_CHUNK + 256 * 1024;
/** Output buffers the main thread gave back once written, for the next flushes (any stream). */
const free: ArrayBuffer[] = [];
const FREE_KEEP = 8;

interface StreamState {
  enc: SeipdV1Encryptor;
  parts: Buffer[];
  pending: number;
}

const streams = new Map<number, StreamState>();
const port = parentPort;
if (!port) throw new Error('encrypt-worker must run in a worker thread');

function flushOut(id: number, s: StreamState): void {
  if (s.pending === 0) return;
  // A buffer given back is used for any flush that fits; a new one is made poolable only for a
  // full flush (a small last one, e.g. of a small file, gets a buffer of its own size).
  const reused = s.pending <= OUT_CAP ? free.pop() : undefined;
  const pooled = reused !== undefined || (s.pending >= OUT_CHUNK && s.pending <= OUT_CAP);
  const backing = reused ?? (Buffer.allocUnsafeSlow(pooled ? OUT_CAP : s.pending).buffer as ArrayBuffer);
  const out = Buffer.from(backing, 0, s.pending);
  let off = 0;
  for (const p of s.parts) {
    out.set(p, off);
    off += p.length;
  }
  s.parts = [];
  s.pending = 0;
  port?.postMessage({ t: 'out', id, chunk: out, pooled, reused: reused !== undefined }, [backing]);
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'open': {
      try {
        const enc = createSeipdV1Encryptor({ sessionKey: m.sessionKey, filename: m.filename, externalMdc: m.externalMdc, ...(m.date !== undefined ? { date: new Date(m.date) } : {}), ...(m.prefix ? { prefix: m.prefix } : {}) });
        const s: StreamState = { enc, parts: [], pending: 0 };
        streams.set(m.id, s);
        enc.on('data', (c: Buffer) => {
          s.parts.push(c);
          s.pending += c.length;
          if (s.pending >= OUT_CHUNK) flushOut(m.id, s);
        });
        enc.on('end', () => {
          flushOut(m.id, s);
          streams.delete(m.id);
          port.postMessage({ t: 'done', id: m.id });
        });
        enc.on('error', (err: Error) => {
          streams.delete(m.id);
          port.postMessage({ t: 'error', id: m.id, message: err.message });
        });
      } catch (err) {
        port.postMessage({ t: 'error', id: m.id, message: (err as Error).message });
      }
      return;
    }
    case 'data': {
      const s = streams.get(m.id);
      if (!s) return;
      const { chunk, giveBack } = m;
      const len = chunk.length;
      s.enc.write(Buffer.from(chunk.buffer, chunk.byteOffset, len), () => {
        if (!giveBack) {
          port.postMessage({ t: 'ack', id: m.id, bytes: len });
          return;
        }
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
      if (free.length < FREE_KEEP && m.buffer.byteLength === OUT_CAP) free.push(m.buffer);
      return;
    case 'abort': {
      const s = streams.get(m.id);
      streams.delete(m.id);
      s?.enc.destroy();
      return;
    }
  }
});
