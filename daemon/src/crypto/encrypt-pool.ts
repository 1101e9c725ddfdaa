/**
 * EncryptPool: SEIPDv1 encryption off the main thread. The main thread keeps the protocol work
 * (SSH decryption, SFTP, HTTP) while worker threads run AES-256-CFB over the plaintext, and the
 * SHA-1 of the MDC either with it (the default) or in the main thread; the bytes are the same as
 * createSeipdV1Encryptor's for the same chunking. Each stream is a Duplex with bounded memory:
 * input waits while too much is in flight or unread.
 */
import os from 'node:os';
import { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { lendsChunks, type StagingSource } from '../util/recycle.ts';
import { workerEntry } from '../util/worker-entry.ts';
import { nativeCfbStatus } from './native-cfb.ts';
import { SeipdV1Plaintext, type SeipdV1Options } from './seipd-v1.ts';

/** Messages to a worker. */
export type ToWorker =
  | { t: 'open'; id: number; sessionKey: Uint8Array; filename?: string | undefined; date?: number | undefined; prefix?: Uint8Array | undefined; externalMdc: boolean }
  /** A staging buffer's bytes; the worker moves the buffer back with the ack, for reuse. */
  | { t: 'data'; id: number; chunk: Uint8Array }
  /** With `externalMdc`, the MDC's SHA-1 value computed in the main thread. */
  | { t: 'end'; id: number; mdc?: Uint8Array | undefined }
  | { t: 'abort'; id: number }
  /** An output buffer given back (transferred) once written; the worker reuses it. */
  | { t: 'return'; buffer: ArrayBuffer };

/** A worker's settings: `aligned`, page-aligned output buffers of exactly 1 MiB, for O_DIRECT (see encrypt-worker.ts). */
export interface EncryptWorkerData {
  aligned: boolean;
}

/** Messages from a worker. */
type FromWorker = { t: 'out'; id: number; chunk: Uint8Array; pooled: boolean; reused: boolean } | { t: 'ack'; id: number; bytes: number; buffer?: ArrayBuffer | undefined } | { t: 'done'; id: number } | { t: 'error'; id: number; message: string };

const MAX_IN_FLIGHT = 2 * 1024 * 1024;
/** Input is copied into staging buffers of this size, each moved to the worker once full. */
export const STAGE_BYTES = 256 * 1024;
/** Staging buffers kept for reuse once the workers gave them back (4 MiB). */
const STAGES_KEPT = 16;

/**
 * Staging buffers shared by the streams of a pool. Each one goes to a worker and comes back
 * once encrypted: a buffer dropped by the thread that received it is garbage that only a full
 * collection frees there, so at upload speed a new buffer per piece keeps that thread's
 * collector busy and its memory growing. A writer may also take one, fill it and write it
 * whole to an encryptor, which then moves it to the worker without copying it again.
 */
class StageBuffers implements StagingSource {
  readonly size = STAGE_BYTES;
  private readonly free: ArrayBuffer[] = [];
  /** Buffers taken and not written to an encryptor yet (a dropped one is simply collected). */
  private readonly lent = new WeakSet<ArrayBuffer>();
  /** How many times take() returned a buffer that came back (for tests and measurements). */
  reused = 0;

  take(): Buffer {
    const buffer = this.free.pop();
    if (buffer) this.reused++;
    const taken = buffer ? Buffer.from(buffer) : Buffer.allocUnsafeSlow(STAGE_BYTES);
    this.lent.add(taken.buffer as ArrayBuffer);
    return taken;
  }

  /**
   * True if `chunk` starts a buffer this pool lent out; its lender gives up the buffer, which
   * now belongs to the caller (to move to a worker, or to give back).
   */
  claim(chunk: Uint8Array): boolean {
    return chunk.byteOffset === 0 && this.lent.delete(chunk.buffer as ArrayBuffer);
  }

  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength === STAGE_BYTES && this.free.length < STAGES_KEPT) this.free.push(buffer);
  }
}

/** A pool of encryption workers shared by all uploads of the process. */
export class EncryptPool {
  private readonly workers: Array<{ worker: Worker; streams: Map<number, WorkerEncryptor> }> = [];
  private nextId = 1;
  private closed = false;
  private readonly stages = new StageBuffers();

  /**
   * `alignedOutput`: output in page-aligned buffers of exactly 1 MiB, which a blob store that
   * writes with O_DIRECT takes without a copy (storage.directWrites); through the page cache the
   * default gathering is cheaper (see OUT_CAP in encrypt-worker.ts).
   */
  constructor(
    readonly size = Math.max(1, (os.availableParallelism?.() ?? os.cpus().length) - 1),
    private readonly alignedOutput = false,
  ) {}

  private worker(): { worker: Worker; streams: Map<number, WorkerEncryptor> } {
    if (this.workers.length < this.size) {
      const data: EncryptWorkerData = { aligned: this.alignedOutput };
      const worker = new Worker(workerEntry(import.meta.url, 'encrypt-worker'), { workerData: data });
      worker.unref();
      const slot = { worker, streams: new Map<number, WorkerEncryptor>() };
      worker.on('message', (m: FromWorker) => slot.streams.get(m.id)?.onMessage(m));
      worker.on('error', (err) => {
        for (const s of slot.streams.values()) s.destroy(err);
        slot.streams.clear();
        const i = this.workers.indexOf(slot);
        if (i >= 0) this.workers.splice(i, 1);
      });
      this.workers.push(slot);
      return slot;
    }
    // Least busy worker.
    return this.workers.reduce((a, b) => (b.streams.size < a.streams.size ? b : a));
  }

  /**
   * A Duplex from plaintext to one SEIPDv1 packet, encrypted in a worker thread. With
   * `mdcInWorker` (the default) the worker also computes the MDC's SHA-1 — right where the main
   * thread is busy (SFTP decrypts SSH there); without it the main thread hashes each chunk
   * before it moves to the worker, which then only runs the cipher — right where the worker is
   * the bottleneck (HTTP and WebDAV uploads). Where the native cipher runs (native-cfb.ts),
   * the worker always hashes: there the SHA-1 runs in the cipher's own pass, nearly for free.
   * The bytes are the same either way.
   */
  createEncryptor(options: SeipdV1Options, mdcInWorker = true, inFlightLimit?: () => number): Duplex & { readonly reusedChunks: number } {
    if (this.closed) throw new Error('the encryption pool is closed');
    // Hashing here needs the prefix and the literal date here too: both are fixed now and sent.
    const plain = mdcInWorker || nativeCfbStatus().native ? null : new SeipdV1Plaintext(options, true);
    const entry = this.worker();
    const id = this.nextId++;
    const enc = new WorkerEncryptor(entry.worker, id, () => entry.streams.delete(id), plain, this.stages, inFlightLimit);
    entry.streams.set(id, enc);
    const msg: ToWorker = {
      t: 'open',
      id,
      sessionKey: Uint8Array.from(options.sessionKey),
      filename: options.filename,
      date: (plain?.date ?? options.date)?.getTime(),
      prefix: plain?.prefix ?? options.prefix,
      externalMdc: plain !== null,
    };
    entry.worker.postMessage(msg);
    return enc;
  }

  /**
   * Staging buffers of this pool for writers that copy their input as it arrives (SFTP: its
   * WRITE data then dies young in ssh2's buffers); an encryptor moves such a buffer to its
   * worker as it is.
   */
  get staging(): StagingSource {
    return this.stages;
  }

  /** How many staging buffers were used again after a worker gave them back. */
  get reusedStages(): number {
    return this.stages.reused;
  }

  /** Terminates the workers (streams still running fail). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers.length = 0;
  }
}

/**
 * One stream's end of the pool: a Duplex (not a Transform, whose callback bookkeeping assumes
 * output is pushed from inside _transform). Input is accepted while less than MAX_IN_FLIGHT
 * bytes wait in the worker and unread output stays below the same bound.
 */
class WorkerEncryptor extends Duplex {
  /** Output chunks that came out of a buffer the worker reuses (for tests and measurements). */
  reusedChunks = 0;
  private inFlight = 0;
  /** Pooled output buffers lent to the consumer and not given back yet, with the chunk's offset. */
  private readonly lent = new Map<ArrayBuffer, number>();
  /** Copied input not posted yet (see _write), in stage[0, staged). */
  private stage: Buffer | null = null;
  private staged = 0;
  private waiting: ((err?: Error | null) => void) | undefined;
  private finalCb: ((err?: Error | null) => void) | undefined;
  private finished = false;

  constructor(
    private readonly worker: Worker,
    private readonly id: number,
    private readonly release: () => void,
    /** The plaintext side hashed in this thread (the MDC), or null if the worker does it. */
    private readonly plain: SeipdV1Plaintext | null,
    private readonly stages: StageBuffers,
    /** The in-flight bound now (an upload's budget share), kept within [STAGE_BYTES, MAX_IN_FLIGHT]. */
    private readonly inFlightLimit?: () => number,
  ) {
    super({ readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 512 * 1024 });
    plain?.begin();
    // The consumer (the blob store) gives a chunk back once it is written: its buffer goes back
    // to the worker for a later flush instead of a new one per MiB in both threads.
    lendsChunks(this, (chunk) => {
      const buffer = chunk.buffer as ArrayBuffer;
      if (this.lent.get(buffer) !== chunk.byteOffset || !this.lent.delete(buffer)) return;
      const msg: ToWorker = { t: 'return', buffer };
      this.worker.postMessage(msg, [buffer]);
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // A staging buffer of the pool, filled by the writer (Upload.write), moves to the worker as
    // it is: the writer copied its input already.
    if (this.staged === 0 && this.stages.claim(chunk)) this.post(chunk);
    else this.copyIn(chunk);
    if (this.hasRoom()) cb();
    else this.waiting = cb;
  }

  /**
   * Copies a chunk into staging buffers, each moved to the worker once full: one message per
   * STAGE_BYTES, not one per small chunk (an HTTP body comes in pieces of up to 64 KiB), and
   * posting a view would clone its whole backing ArrayBuffer. The buffer comes back with the
   * worker's ack, so the worker makes no garbage of it; the producer's chunk stays garbage of
   * this thread, whose young collections free it within milliseconds. Moving an SFTP WRITE's
   * own buffer to the worker instead (until 2026-11-30) saved the copy, but every moved buffer
   * then waited there for a collection that comes rarely: peak RSS of a 1 GiB upload 192-208
   * MB against 175-190 with the copy, at the same speed.
   */
  private copyIn(chunk: Buffer): void {
    for (let off = 0; off < chunk.length; ) {
      this.stage ??= this.stages.take();
      const n = chunk.copy(this.stage, this.staged, off);
      this.staged += n;
      off += n;
      if (this.staged === STAGE_BYTES) this.postStage();
    }
    // A pool buffer that arrived behind a partial stage: copied now, so it can be reused.
    if (this.stages.claim(chunk)) this.stages.give(chunk.buffer as ArrayBuffer);
  }

  /** Moves the staged bytes, if any, to the worker, which gives the buffer back once it took them. */
  private postStage(): void {
    if (this.stage === null || this.staged === 0) return;
    const data = this.stage.subarray(0, this.staged);
    this.stage = null;
    this.staged = 0;
    this.post(data);
  }

  private post(data: Uint8Array): void {
    if (this.plain) {
      // Hashed in the order the worker encrypts; what the framing holds back is copied, as the
      // chunk moves away now.
      this.plain.push(data);
      this.plain.detach();
    }
    this.inFlight += data.length;
    const msg: ToWorker = { t: 'data', id: this.id, chunk: data };
    this.worker.postMessage(msg, [data.buffer as ArrayBuffer]);
  }

  private hasRoom(): boolean {
    const limit = this.inFlightLimit ? Math.max(STAGE_BYTES, Math.min(MAX_IN_FLIGHT, this.inFlightLimit())) : MAX_IN_FLIGHT;
    return this.inFlight < limit && this.readableLength < limit;
  }

  private wake(): void {
    if (this.waiting && this.hasRoom()) {
      const cb = this.waiting;
      this.waiting = undefined;
      cb();
    }
  }

  override _read(): void {
    // Readable calls _read() before it takes from its buffer what the consumer reads: right
    // now readableLength still counts that, so look again once it is gone. Looking only now
    // left a writer waiting for good when that read was the last event (no output or ack in
    // flight): 16 parallel SFTP uploads stalled that way within a few rounds.
    process.nextTick(() => this.wake());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.postStage();
    this.finalCb = cb;
    let mdc: Uint8Array | undefined;
    if (this.plain) {
      this.plain.end();
      mdc = this.plain.digest();
    }
    const msg: ToWorker = { t: 'end', id: this.id, mdc };
    this.worker.postMessage(msg);
  }

  /** Handles a message of the worker for this stream. */
  onMessage(m: FromWorker): void {
    switch (m.t) {
      case 'out':
        if (m.pooled) this.lent.set(m.chunk.buffer as ArrayBuffer, m.chunk.byteOffset);
        if (m.reused) this.reusedChunks++;
        this.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.length));
        break;
      case 'ack':
        this.inFlight -= m.bytes;
        if (m.buffer) this.stages.give(m.buffer);
        break;
      case 'done':
        this.finished = true;
        this.release();
        this.push(null);
        this.finalCb?.();
        return;
      case 'error':
        this.release();
        this.destroy(new Error(`encryption failed: ${m.message}`));
        return;
    }
    this.wake();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.stage) this.stages.give(this.stage.buffer as ArrayBuffer);
    this.stage = null;
    if (!this.finished) {
      const msg: ToWorker = { t: 'abort', id: this.id };
      this.worker.postMessage(msg);
      this.release();
    }
    cb(err);
  }
}
