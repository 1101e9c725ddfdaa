/**
 * Upload: one file on its way in. Plaintext is written to `input`, counted against the size
 * limit, encrypted as it streams and stored as a blob (temp name, fsync, rename); `complete()`
 * commits the file row and its wraps, `abort()` leaves nothing behind. Every protocol (HTTP
 * PUT, SFTP WRITE, WebDAV PUT) drives the same object; back-pressure is the input's.
 */
import { randomBytes } from 'node:crypto';
import { pipeline, Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import type { BlobInfo, BlobStore } from '../store/blob-store.ts';
import type { StagingSource } from '../util/recycle.ts';
import { fail, SealdropError } from './errors.ts';

/**
 * Counts plaintext bytes, fails the stream once `max` is exceeded, and tells writers when its
 * buffer has room again (`room()`), so protocols can acknowledge data while the pipeline keeps
 * running instead of stopping until the buffer is empty ('drain').
 */
export class SizeLimit extends Transform {
  bytes = 0;
  private waiters: Array<{ max: number; resolve: () => void; reject: (err: Error) => void }> = [];

  constructor(private readonly max: number) {
    super({ highWaterMark: 1024 * 1024 });
    this.once('error', (err) => this.settle(err));
    this.once('close', () => this.settle(this.errored ?? new SealdropError('SEALDROP_E_ABORTED', 'the upload was closed')));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) {
      cb(new SealdropError('SEALDROP_E_TOO_LARGE', `the file exceeds the limit of ${this.max} bytes`));
      return;
    }
    cb(null, chunk);
  }

  /**
   * Settles the waiters whenever a chunk's write completes. That is not always inside
   * _transform: when the readable side is full, Transform completes the write later, once the
   * consumer reads. The writer may be waiting for exactly that (an SFTP session that stopped
   * reading its client above its share writes nothing more), so waiting for the next
   * _transform could wait forever: 16 parallel uploads stalled that way until the client's
   * keepalive ran out.
   */
  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    super._write(chunk, encoding, (err?: Error | null) => {
      callback(err);
      if (this.waiters.length) this.settle(null);
    });
  }

  /** Resolves once at most `maxBuffered` bytes wait in the input buffer; rejects if the stream failed. */
  room(maxBuffered: number): Promise<void> {
    if (this.errored) return Promise.reject(this.errored);
    if (this.writableLength <= maxBuffered) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ max: maxBuffered, resolve, reject }));
  }

  private settle(err: Error | null): void {
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (err) w.reject(err);
      else if (this.writableLength <= w.max) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }
}

/** What an upload needs from its owner (the delivery service). */
export interface UploadPlan<T> {
  blobs: BlobStore;
  maxBytes: number;
  /** Turns the plaintext stream into the ciphertext stream to store. */
  encrypt(plain: Readable): Promise<Readable> | Readable;
  /** Records the stored blob (in a transaction); throwing discards the blob. */
  commit(stored: { bytes: number; blobKey: string; blob: BlobInfo }): Promise<T>;
  /** Called once after an abort or a failed completion, when nothing of the file remains. */
  discarded?(): Promise<void>;
  /** Called once when the upload is done or aborted (to wipe secrets it held). */
  finished?(): void;
  /** Plaintext bytes this upload may keep waiting for encryption (its TransferBudget share); default 4 MiB. */
  holdBytes?: () => number;
  /**
   * Where write() gets buffers to copy plaintext into as it arrives, written on whole once
   * full (the encryption pool's staging buffers, which its encryptor moves to a worker as they
   * are). Without it write() passes the caller's buffer on.
   */
  staging?: StagingSource | undefined;
}

/** The buffer of an upload without a budget. */
const DEFAULT_HOLD_BYTES = 4 * 1024 * 1024;

/** A file being uploaded. */
export class Upload<T> {
  private state: 'open' | 'completing' | 'done' | 'aborted' = 'open';
  private completion: Promise<T> | undefined;
  /** With plan.staging: the buffer write() is filling, and how much of it. */
  private stage: Buffer | null = null;
  private staged = 0;

  private constructor(
    private readonly plan: UploadPlan<T>,
    private readonly limit: SizeLimit,
    private readonly blobKey: string,
    private readonly stored: Promise<BlobInfo>,
  ) {}

  /** Starts an upload: the blob write begins at once and consumes what `input` receives. */
  static async start<T>(plan: UploadPlan<T>): Promise<Upload<T>> {
    const limit = new SizeLimit(plan.maxBytes);
    const blobKey = randomBytes(16).toString('hex');
    const encrypted = await plan.encrypt(limit);
    // An error anywhere (size limit, cipher, disk) reaches every stage.
    limit.on('error', (err) => encrypted.destroy(err));
    const stored = plan.blobs.put(blobKey, encrypted);
    stored.catch(() => undefined); // observed in complete()/abort()
    return new Upload(plan, limit, blobKey, stored);
  }

  /** Where plaintext goes (a Writable with back-pressure). */
  get input(): Writable {
    return this.limit;
  }

  /**
   * Plaintext bytes this upload may keep waiting for encryption now (its share of the daemon's
   * upload buffer budget): a protocol stops reading its client beyond it.
   */
  get holdBytes(): number {
    return this.plan.holdBytes?.() ?? DEFAULT_HOLD_BYTES;
  }

  /** True if write() copies the data before it returns (plan.staging): the caller may reuse its buffer at once. */
  get copiesInput(): boolean {
    return this.plan.staging !== undefined;
  }

  /**
   * Writes plaintext; resolves once the upload's buffer holds at most `maxBuffered` bytes
   * (default: half its holdBytes), the point to acknowledge the data to the client. Rejects if
   * the upload failed. With plan.staging the bytes are copied before this returns, so the
   * caller may reuse or drop `data` at once.
   */
  write(data: Buffer, maxBuffered = this.holdBytes / 2): Promise<void> {
    if (this.state !== 'open') return Promise.reject(fail('SEALDROP_E_ABORTED', 'the upload is not open'));
    const staging = this.plan.staging;
    if (!staging) this.limit.write(data);
    else {
      // Copied now: an SFTP WRITE's data is a view of the 256 KiB packet ssh2 assembled, and
      // while it waited in the buffer below it outlived the young collections, so each packet
      // became old garbage that only the next full collection freed (tens of MB at upload speed).
      for (let off = 0; off < data.length; ) {
        this.stage ??= staging.take();
        const n = data.copy(this.stage, this.staged, off);
        this.staged += n;
        off += n;
        if (this.staged === this.stage.length) this.flushStage();
      }
    }
    return this.room(maxBuffered);
  }

  /** Passes the staged bytes on. */
  private flushStage(): void {
    if (this.stage === null || this.staged === 0) return;
    const full = this.staged === this.stage.length;
    this.limit.write(full ? this.stage : this.stage.subarray(0, this.staged));
    this.stage = null;
    this.staged = 0;
  }

  /** Plaintext bytes written but not yet taken by the encryption stage. */
  get buffered(): number {
    return this.limit.writableLength + this.staged;
  }

  /** Resolves once at most `maxBuffered` bytes wait in the input buffer; rejects if the upload failed. */
  room(maxBuffered: number): Promise<void> {
    // `buffered` counts the staged bytes too; they wait in no stream.
    return this.limit.room(Math.max(0, maxBuffered - this.staged));
  }

  /** Plaintext bytes received so far. */
  get bytes(): number {
    return this.limit.bytes + this.staged;
  }

  /** True while data may still be written. */
  get open(): boolean {
    return this.state === 'open';
  }

  /** Ends the input, waits until the blob is stored, and commits; on failure nothing remains. */
  complete(): Promise<T> {
    if (this.state === 'aborted') return Promise.reject(fail('SEALDROP_E_ABORTED', 'the upload was aborted'));
    this.completion ??= this.finish();
    return this.completion;
  }

  private async finish(): Promise<T> {
    try {
      return await this.finishing();
    } finally {
      this.plan.finished?.();
    }
  }

  private async finishing(): Promise<T> {
    this.state = 'completing';
    if (!this.limit.writableEnded) {
      this.flushStage();
      this.limit.end();
    }
    let blob: BlobInfo;
    try {
      blob = await this.stored;
    } catch (err) {
      this.state = 'aborted';
      await this.plan.discarded?.();
      throw this.limit.bytes > this.plan.maxBytes ? fail('SEALDROP_E_TOO_LARGE', `the file exceeds the limit of ${this.plan.maxBytes} bytes`) : err;
    }
    try {
      const result = await this.plan.commit({ bytes: this.limit.bytes, blobKey: this.blobKey, blob });
      this.state = 'done';
      return result;
    } catch (err) {
      this.state = 'aborted';
      await this.plan.blobs.delete(this.blobKey);
      await this.plan.discarded?.();
      throw err;
    }
  }

  /** Abandons the upload: the partial blob is removed and the file never joins a delivery. */
  async abort(reason: Error = fail('SEALDROP_E_ABORTED', 'the upload was aborted')): Promise<void> {
    if (this.state === 'done' || this.state === 'aborted') return;
    if (this.state === 'completing') {
      await this.completion?.catch(() => undefined);
      return;
    }
    this.state = 'aborted';
    this.stage = null; // dropped unwritten (collected)
    this.staged = 0;
    this.plan.finished?.();
    this.limit.destroy(reason);
    await this.stored.catch(() => undefined);
    await this.plan.blobs.delete(this.blobKey);
    await this.plan.discarded?.();
  }

  /**
   * Streams `body` into the upload and completes it; aborts if the body fails (a client that
   * goes away must make its body stream fail, as the HTTP adapter's detached body does).
   */
  async fromStream(body: Readable): Promise<T> {
    try {
      await new Promise<void>((resolve, reject) => {
        pipeline(body, this.limit, (err) => (err ? reject(err) : resolve()));
      });
    } catch (err) {
      await this.abort(err instanceof SealdropError ? err : fail('SEALDROP_E_ABORTED', 'the upload was aborted'));
      if (this.limit.bytes > this.plan.maxBytes) throw fail('SEALDROP_E_TOO_LARGE', `the file exceeds the limit of ${this.plan.maxBytes} bytes`);
      throw err instanceof SealdropError ? err : fail('SEALDROP_E_ABORTED', 'the upload was aborted before it completed');
    }
    return this.complete();
  }
}
