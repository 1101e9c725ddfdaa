/**
 * FsBlobStore: blobs as files under a folder (`ab/cd/<key>`), written to `tmp/` first,
 * fsynced, renamed into place, and the directory fsynced: a crash never leaves a partial blob
 * under a real key. Works on a shared filesystem across instances (rename is atomic there too).
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fail } from '../core/errors.ts';
import { allocAligned, alignedBuffersStatus, alignUp, DIRECT_ALIGN, isAligned } from '../util/direct-io.ts';
import { BufferPool, lendsChunks, recyclerOf, type Recycle } from '../util/recycle.ts';
import { isBlobKey, type BlobInfo, type BlobStore, type GetOptions, type PutOptions } from './blob-store.ts';

const TMP = 'tmp';
const COALESCE_BYTES = 1024 * 1024;
const SYNC_EVERY = 32 * 1024 * 1024;
/**
 * Reads of a blob: 2 MiB each. Measured, 1 GiB WebDAV GETs with curl from the page cache
 * (`npm run bench -- --only webdav`, medians of 3, alternating): 1 MiB reads 1384 and 1466 MB/s
 * against nginx's 1688 and 1694 (0.82, 0.87); 2 MiB 2009 and 1647 against 1600 and 1557; 4 MiB
 * 1967 and 1947 against 1623 and 1545 — each read waits for the last to be sent, so the
 * per-read round trip counts. A download holds a few of them (the HTTP listener up to 4 at the
 * socket): 2 MiB keeps most of the gain at half the memory of 4.
 */
export const READ_BYTES = 2 * 1024 * 1024;

/** Whether blobs are written with O_DIRECT, or why not. */
export type DirectWrites = { on: true } | { on: false; reason: string };

/** A BlobStore on the local (or a shared) filesystem. */
export class FsBlobStore implements BlobStore {
  private readonly wantDirect: boolean;
  private direct: DirectWrites;

  /**
   * `directWrites`: write and read blobs past the page cache (O_DIRECT) where the filesystem
   * and the addon allow it; init() finds out. Off by default (storage.directWrites).
   */
  constructor(
    readonly root: string,
    options: { directWrites?: boolean } = {},
  ) {
    this.wantDirect = options.directWrites === true;
    this.direct = { on: false, reason: this.wantDirect ? 'init() has not run' : 'not asked for (storage.directWrites: false)' };
  }

  /** How blobs are written: past the page cache (O_DIRECT) or through it, and why. */
  get directWrites(): DirectWrites {
    return this.direct;
  }

  /** Creates the folder layout (mode 0700) and finds out whether direct writes work here. */
  async init(): Promise<void> {
    await fs.mkdir(path.join(this.root, TMP), { recursive: true, mode: 0o700 });
    if (this.wantDirect) this.direct = await this.probeDirect();
  }

  /** Writes one aligned block with O_DIRECT into a file in tmp/ (then removed). */
  private async probeDirect(): Promise<DirectWrites> {
    const addon = alignedBuffersStatus();
    if (!addon.available) return { on: false, reason: addon.reason };
    if (!fsConstants.O_DIRECT) return { on: false, reason: 'this platform has no O_DIRECT' };
    const probe = path.join(this.root, TMP, `direct-probe.${randomBytes(6).toString('hex')}.part`);
    try {
      const fh = await fs.open(probe, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_DIRECT, 0o600);
      try {
        await fh.write((allocAligned(DIRECT_ALIGN) as Buffer).fill(0), 0, DIRECT_ALIGN, 0);
      } finally {
        await fh.close();
      }
      return { on: true };
    } catch (err) {
      return { on: false, reason: `the filesystem of ${this.root} refused an O_DIRECT write (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
    } finally {
      await fs.rm(probe, { force: true });
    }
  }

  private pathOf(key: string): string {
    if (!isBlobKey(key)) throw fail('SEALDROP_E_INTERNAL', 'invalid blob key');
    return path.join(this.root, key.slice(0, 2), key.slice(2, 4), key);
  }

  async put(key: string, data: Readable, options: PutOptions = {}): Promise<BlobInfo> {
    const final = this.pathOf(key);
    const dir = path.dirname(final);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    if (await exists(final)) throw fail('SEALDROP_E_CONFLICT', 'blob exists');
    const tmp = path.join(this.root, TMP, `${key}.${randomBytes(6).toString('hex')}.part`);
    let size = 0;
    // Counts and gathers small chunks into ~1 MiB writes (many small writes cost more
    // than the copy: measured 185 → 295 MB/s for the encrypted upload path). Its own buffers
    // are small: the encryption pool's ~1 MiB chunks pass through whole, and each chunk held
    // in a stage of this chain is one more in flight (256 KiB here and 1 MiB in the sink,
    // against 1 MiB and 2 MiB: 1 GiB SFTP upload peaks ~3 MB lower, measured together with a
    // young collection per 1 MiB of SFTP data, the pacing of that time; see sftp/server.ts).
    let parts: Buffer[] = [];
    let pending = 0;
    const meter = new Transform({
      writableHighWaterMark: 256 * 1024,
      readableHighWaterMark: 256 * 1024,
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        parts.push(chunk);
        pending += chunk.length;
        if (pending < COALESCE_BYTES) return cb();
        const out = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, pending);
        parts = [];
        pending = 0;
        cb(null, out);
      },
      flush(cb) {
        cb(null, pending ? Buffer.concat(parts, pending) : undefined);
      },
    });
    // A source that lends its chunks (the encryption pool) gets each back once it is written.
    const sink = new DurableFile(tmp, this.direct.on, recyclerOf(data));
    try {
      await pipeline(data, meter, sink, options.signal ? { signal: options.signal } : {});
      await fs.rename(tmp, final);
      await syncDir(dir);
    } catch (err) {
      // A source that failed at once rejects the pipeline while the sink may still be opening
      // the file: wait until it is closed, or the file would appear after its removal.
      if (!sink.closed) {
        sink.destroy();
        await new Promise((resolve) => sink.once('close', resolve));
      }
      await fs.rm(tmp, { force: true });
      throw err;
    }
    return { size };
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const file = this.pathOf(key);
    // Open first so a missing blob is an error here, not later on the stream.
    const direct = this.direct.on;
    const handle = await fs.open(file, fsConstants.O_RDONLY | (direct ? fsConstants.O_DIRECT : 0)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw fail('SEALDROP_E_NOT_FOUND', 'the stored file is gone');
      throw err;
    });
    return new BlobReadStream(handle, options.head, direct);
  }

  async stat(key: string): Promise<{ size: number; modifiedAt: Date } | undefined> {
    try {
      const st = await fs.stat(this.pathOf(key));
      return { size: st.size, modifiedAt: st.mtime };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.pathOf(key), { force: true });
  }

  async *list(): AsyncIterable<string> {
    for (const a of await readdirSafe(this.root)) {
      if (!/^[0-9a-f]{2}$/.test(a)) continue;
      for (const b of await readdirSafe(path.join(this.root, a))) {
        for (const key of await readdirSafe(path.join(this.root, a, b))) {
          if (isBlobKey(key)) yield key;
        }
      }
    }
  }

  async check(): Promise<void> {
    await fs.access(path.join(this.root, TMP), fsConstants.W_OK);
  }

  async cleanup(olderThanMs: number): Promise<number> {
    const dir = path.join(this.root, TMP);
    let removed = 0;
    const now = Date.now();
    for (const name of await readdirSafe(dir)) {
      const file = path.join(dir, name);
      const st = await fs.stat(file).catch(() => undefined);
      if (st && now - st.mtimeMs >= olderThanMs) {
        await fs.rm(file, { force: true });
        removed++;
      }
    }
    return removed;
  }
}

/**
 * A blob's bytes (after an optional head) in chunks of READ_BYTES read into pooled buffers:
 * a consumer that gives the chunks back (util/recycle.ts) moves the whole file through a few
 * buffers; one that does not gets a new buffer per chunk, as from fs.createReadStream. The next
 * chunk is read while one is sent (one read ahead: 1 GiB WebDAV GETs from the page cache, the
 * same build with and without it, 3.18-3.49 against 2.50-2.51 GB/s here). With direct writes
 * the file is read with O_DIRECT into aligned buffers too: it is not in the page cache, and
 * filling the cache would cost what writing past it saved (util/direct-io.ts).
 */
class BlobReadStream extends Readable {
  private readonly pool: BufferPool;
  private position = 0;
  /** The next chunk's read, started while the last one is consumed. */
  private ahead: Promise<Buffer | null> | undefined;

  constructor(
    private readonly fh: FileHandle,
    private head: Buffer | undefined,
    direct: boolean,
  ) {
    super({ highWaterMark: READ_BYTES });
    this.pool = new BufferPool(READ_BYTES, 8, direct ? (n) => allocAligned(n) as Buffer : undefined);
    lendsChunks(this, (chunk) => this.pool.give(chunk));
  }

  /** Reads the next READ_BYTES (fewer at the end; null past it) into a pooled buffer. */
  private readNext(): Promise<Buffer | null> {
    const buf = this.pool.take();
    const at = this.position;
    this.position += READ_BYTES;
    return this.fh.read(buf, 0, buf.length, at).then(
      ({ bytesRead }) => {
        if (bytesRead > 0) return buf.subarray(0, bytesRead);
        this.pool.give(buf);
        return null;
      },
      (err: Error) => {
        this.pool.give(buf);
        throw err;
      },
    );
  }

  override _read(): void {
    if (this.head) {
      const head = this.head;
      this.head = undefined;
      this.push(head);
      return;
    }
    const current = this.ahead ?? this.readNext();
    this.ahead = undefined;
    current.then(
      (chunk) => {
        if (chunk === null) {
          this.push(null);
          return;
        }
        if (chunk.length === READ_BYTES && !this.destroyed) {
          // Read ahead while this chunk is sent: with O_DIRECT nothing else does.
          this.ahead = this.readNext();
          this.ahead.catch(() => undefined);
        }
        this.push(chunk);
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.pool.clear();
    this.fh.close().then(
      () => cb(err),
      (closeErr: Error) => cb(err ?? closeErr),
    );
  }
}

/**
 * A file sink that is durable when it finishes, and writes with writev in one of two ways:
 * - Direct (O_DIRECT, past the page cache; see util/direct-io.ts), where FsBlobStore.init()
 *   found that the filesystem takes such writes: a chunk whose memory and length are aligned
 *   (the encryption pool's output) goes to the disk as it is; other bytes are copied into an
 *   aligned carry buffer first, written once it ends on an aligned length. The last partial
 *   block is written zero-padded and the file cut back to its length.
 * - Through the page cache: an fdatasync starts every SYNC_EVERY bytes while writing goes on, so
 *   the final fsync has little left to flush.
 * Either way it fsyncs before 'finish'.
 */
class DurableFile extends Writable {
  private fh: FileHandle | undefined;
  /** Bytes in the file; in direct mode a multiple of DIRECT_ALIGN until the last write. */
  private written = 0;
  private synced = 0;
  private syncing: Promise<void> | undefined;
  /** Direct mode: bytes copied and not written yet, in carry[0, carried). */
  private carry: Buffer | null = null;
  private carried = 0;

  constructor(
    private readonly file: string,
    private readonly direct: boolean,
    private readonly giveBack?: Recycle,
  ) {
    super({ highWaterMark: COALESCE_BYTES });
  }

  override _construct(cb: (err?: Error | null) => void): void {
    const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | (this.direct ? fsConstants.O_DIRECT : 0);
    fs.open(this.file, flags, 0o600).then((fh) => {
      this.fh = fh;
      cb();
    }, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    const out = this.direct ? this.alignedWrites(buffers) : buffers;
    this.writeOut(out).then(() => {
      if (this.giveBack) for (const b of buffers) this.giveBack(b);
      if (!this.direct && !this.syncing && this.written - this.synced >= SYNC_EVERY) this.startSync();
      cb();
    }, cb);
  }

  /**
   * Direct mode: what to write now for these chunks, in order; the bytes of a last piece that
   * does not end on an aligned length stay in the carry (copied: their chunk goes back).
   */
  private alignedWrites(chunks: Buffer[]): Buffer[] {
    const out: Buffer[] = [];
    for (const chunk of chunks) {
      if (this.carried === 0 && isAligned(chunk)) {
        out.push(chunk);
        continue;
      }
      for (let off = 0; off < chunk.length; ) {
        this.carry ??= allocAligned(COALESCE_BYTES) as Buffer;
        const n = chunk.copy(this.carry, this.carried, off);
        this.carried += n;
        off += n;
        if (this.carried === this.carry.length) out.push(this.takeCarry());
      }
      if (this.carried % DIRECT_ALIGN === 0 && this.carried > 0) out.push(this.takeCarry());
    }
    return out;
  }

  /** The carried bytes as one buffer to write; a new carry is made when needed. */
  private takeCarry(): Buffer {
    const filled = (this.carry as Buffer).subarray(0, this.carried);
    this.carry = null;
    this.carried = 0;
    return filled;
  }

  /** Writes buffers at the end of the file, all of them (writev may write less than asked). */
  private async writeOut(buffers: Buffer[]): Promise<void> {
    let rest = buffers;
    while (rest.length > 0) {
      const total = rest.reduce((n, b) => n + b.length, 0);
      const { bytesWritten } = await (this.fh as FileHandle).writev(rest, this.written);
      this.written += bytesWritten;
      if (bytesWritten === total) return;
      rest = skipBytes(rest, bytesWritten);
    }
  }

  private startSync(): void {
    const upTo = this.written;
    this.syncing = (this.fh as FileHandle).datasync().then(
      () => {
        this.synced = upTo;
        this.syncing = undefined;
      },
      () => {
        this.syncing = undefined;
      },
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finish().then(() => cb(), cb);
  }

  private async finish(): Promise<void> {
    if (this.carried > 0) {
      // The last partial block, zero-padded to an aligned length, then the file cut back.
      const length = this.written + this.carried;
      const padded = alignUp(this.carried);
      const last = (this.carry as Buffer).fill(0, this.carried, padded).subarray(0, padded);
      this.carry = null;
      this.carried = 0;
      await this.writeOut([last]);
      if (this.written !== length) {
        await (this.fh as FileHandle).truncate(length);
        this.written = length;
      }
    }
    const fh = this.fh as FileHandle;
    await this.syncing;
    await fh.sync();
    await fh.close();
    this.fh = undefined;
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = undefined;
    this.carry = null;
    if (!fh) return cb(err);
    Promise.resolve(this.syncing)
      .then(() => fh.close())
      .then(
        () => cb(err),
        () => cb(err),
      );
  }
}

/** The buffers after their first `n` bytes (views, no copy). */
function skipBytes(buffers: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (n >= (buffers[i] as Buffer).length) n -= (buffers[i++] as Buffer).length;
  const rest = buffers.slice(i);
  rest[0] = (rest[0] as Buffer).subarray(n);
  return rest;
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

async function readdirSafe(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
