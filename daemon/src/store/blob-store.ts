/**
 * BlobStore: where ciphertext lives. One interface for every backend (local filesystem now,
 * S3-compatible later); every backend passes the contract suite in `blob-store.contract.ts`.
 */
import type { Readable } from 'node:stream';

/** What a completed write reports. */
export interface BlobInfo {
  /** Bytes stored. */
  size: number;
}

/** Options of BlobStore.put. */
export interface PutOptions {
  /** Aborting discards the partial blob; put() rejects. */
  signal?: AbortSignal;
}

/** Options of BlobStore.get(). */
export interface GetOptions {
  /** Bytes the stream emits before the blob's (an OpenPGP packet that precedes the stored ones). */
  head?: Buffer;
}

/** Storage for immutable blobs addressed by key. */
export interface BlobStore {
  /**
   * Stores `data` under `key` atomically: the blob becomes visible only complete and durable
   * (written to a temporary name, flushed, renamed). A failed or aborted write leaves nothing.
   * Rejects if the key exists.
   */
  put(key: string, data: Readable, options?: PutOptions): Promise<BlobInfo>;
  /**
   * Opens a blob for reading; rejects with SEALDROP_E_NOT_FOUND if there is none. The stream may
   * lend its chunks (util/recycle.ts).
   */
  get(key: string, options?: GetOptions): Promise<Readable>;
  /** Size and modification time of a blob, or undefined if there is none. */
  stat(key: string): Promise<{ size: number; modifiedAt: Date } | undefined>;
  /** Deletes a blob; deleting a missing blob is not an error. */
  delete(key: string): Promise<void>;
  /** Every stored key (for recovery: orphan sweeps). */
  list(): AsyncIterable<string>;
  /** Throws unless the store is reachable and writable (readiness probe). */
  check(): Promise<void>;
  /** Removes leftovers of interrupted writes older than `olderThanMs`; returns how many. */
  cleanup(olderThanMs: number): Promise<number>;
}

/** True if `key` is a valid blob key (what the core generates: 32 lowercase hex digits). */
export function isBlobKey(key: string): boolean {
  return /^[0-9a-f]{32}$/.test(key);
}
