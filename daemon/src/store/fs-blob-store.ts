/**
 * FsBlobStore: blobs as files under a folder (`ab/cd/<key>`), written to `tmp/` first,
 * fsynced, renamed into place, and the directory fsynced: a crash never leaves a partial blob
 * under a real key. Works on a shared filesystem across instances (rename is atomic there too).
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fail } from '../core/errors.ts';
import { isBlobKey, type BlobInfo, type BlobStore, type PutOptions } from './blob-store.ts';

const TMP = 'tmp';

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
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600, highWaterMark: 256 * 1024 });
      await pipeline(data, meter, out, options.signal ? { signal: options.signal } : {});
      const handle = await fs.open(tmp, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(tmp, final);
      await syncDir(dir);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    return { size, sha256: hash.digest('hex') };
  }

  async get(key: string): Promise<Readable> {
    const file = this.pathOf(key);
    // Open first so a missing blob is an error here, not later on the stream.
    const handle = await fs.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw fail('SEALDROP_E_NOT_FOUND', 'the stored file is gone');
      throw err;
    });
    return handle.createReadStream({ highWaterMark: 256 * 1024 });
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
