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

/** A BlobStore on the local (or a shared) filesystem. */
export class FsBlobStore implements BlobStore {
  constructor(readonly root: string) {}

  /** Creates the folder layout (mode 0700). */
  async init(): Promise<void> {
    await fs.mkdir(path.join(this.root, TMP), { recursive: true, mode: 0o700 });
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
    const sink = new DurableFile(tmp, recyclerOf(data));
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
    const handle = await fs.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw fail('SEALDROP_E_NOT_FOUND', 'the stored file is gone');
      throw err;
    });
    return new BlobReadStream(handle, options.head);
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
 * buffers; one that does not gets a new buffer per chunk, as from fs.createReadStream.
 */
class BlobReadStream extends Readable {
  private readonly pool = new BufferPool(READ_BYTES, 8);
  private position = 0;

  constructor(
    private readonly fh: FileHandle,
    private head: Buffer | undefined,
  ) {
    super({ highWaterMark: READ_BYTES });
    lendsChunks(this, (chunk) => this.pool.give(chunk));
  }

  override _read(): void {
    if (this.head) {
      const head = this.head;
      this.head = undefined;
      this.push(head);
      return;
    }
    const buf = this.pool.take();
    this.fh.read(buf, 0, buf.length, this.position).then(
      ({ bytesRead }) => {
        if (bytesRead === 0) {
          this.pool.give(buf);
          this.push(null);
          return;
        }
        this.position += bytesRead;
        this.push(buf.subarray(0, bytesRead));
      },
      (err: Error) => {
        this.pool.give(buf);
        this.destroy(err);
      },
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
 * A file sink that is durable when it finishes: writes with writev, starts an fdatasync every
 * SYNC_EVERY bytes while writing goes on (so the final fsync has little left to flush), and
 * fsyncs before 'finish'.
 */
class DurableFile extends Writable {
  private fh: FileHandle | undefined;
  private written = 0;
  private synced = 0;
  private syncing: Promise<void> | undefined;

  constructor(
    private readonly file: string,
    private readonly giveBack?: Recycle,
  ) {
    super({ highWaterMark: COALESCE_BYTES });
  }

  override _construct(cb: (err?: Error | null) => void): void {
    fs.open(this.file, 'wx', 0o600).then((fh) => {
      this.fh = fh;
      cb();
    }, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const fh = this.fh as FileHandle;
    const buffers = chunks.map((c) => c.chunk);
    fh.writev(buffers).then(({ bytesWritten }) => {
      this.written += bytesWritten;
      if (this.giveBack) for (const b of buffers) this.giveBack(b);
      if (!this.syncing && this.written - this.synced >= SYNC_EVERY) {
        const upTo = this.written;
        this.syncing = fh.datasync().then(
          () => {
            this.synced = upTo;
            this.syncing = undefined;
          },
          () => {
            this.syncing = undefined;
          },
        );
      }
      cb();
    }, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const fh = this.fh as FileHandle;
    Promise.resolve(this.syncing)
      .then(() => fh.sync())
      .then(() => fh.close())
      .then(() => {
        this.fh = undefined;
        cb();
      }, cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = undefined;
    if (!fh) return cb(err);
    Promise.resolve(this.syncing)
      .then(() => fh.close())
      .then(
        () => cb(err),
        () => cb(err),
      );
  }
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
