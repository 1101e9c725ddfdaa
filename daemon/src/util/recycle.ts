/**
 * Chunk recycling: a readable stream may lend its chunks from a small pool of buffers and take
 * them back once the consumer is done with them, so that moving a file costs no new buffer per
 * chunk. Every byte a fresh Buffer allocates counts as V8 "external memory"; at hundreds of MB/s
 * that pressure alone triggers a full mark-compact every few tens of milliseconds.
 *
 * The contract is opt-in on both sides. A consumer that knows nothing of it never gives a chunk
 * back, and the stream then allocates new ones: correct, only slower. A consumer that does give
 * a chunk back must not touch it (nor any view of it) afterwards, and must give it back only once
 * nothing else holds it either — for a socket write, not before the write's callback.
 */
import type { Readable } from 'node:stream';

const RECYCLER = Symbol('sealdrop.recycler');

/**
 * Where a writer gets buffers to copy its input into as it arrives, each written on whole once
 * full to a stream that takes it over (the encryption pool's staging buffers: its encryptor
 * moves them to a worker as they are, and they come back for reuse).
 */
export interface StagingSource {
  /** Bytes of each buffer. */
  readonly size: number;
  /** A buffer of `size` bytes, the caller's until it writes it on. */
  take(): Buffer;
}

/** Takes back a chunk the stream emitted; chunks it does not know are ignored. */
export type Recycle = (chunk: Buffer) => void;

/** Marks `stream` as one whose chunks may be given back to `recycle`. */
export function lendsChunks<T extends Readable>(stream: T, recycle: Recycle): T {
  (stream as unknown as Record<symbol, Recycle>)[RECYCLER] = recycle;
  return stream;
}

/** The stream's recycler, or undefined if its chunks are not lent. */
export function recyclerOf(stream: Readable): Recycle | undefined {
  return (stream as unknown as Record<symbol, Recycle | undefined>)[RECYCLER];
}

/**
 * A pool of equal buffers lent out one at a time. `take()` returns a pooled buffer or a new one;
 * `give()` accepts only a view starting at the beginning of a buffer this pool lent and that is
 * still out, so a chunk given back twice, or a foreign one, cannot end up lent to two readers.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  /** Lent buffers' memory, with where in it each buffer starts. */
  private readonly out = new Map<ArrayBuffer, number>();

  /** `alloc` makes a new buffer of `size` bytes (it may start anywhere in its ArrayBuffer). */
  constructor(
    readonly size: number,
    private readonly keep: number,
    private readonly alloc: (size: number) => Buffer = Buffer.allocUnsafeSlow,
  ) {}

  take(): Buffer {
    const buf = this.free.pop() ?? this.alloc(this.size);
    this.out.set(buf.buffer as ArrayBuffer, buf.byteOffset);
    return buf;
  }

  give(chunk: Buffer): void {
    const ab = chunk.buffer as ArrayBuffer;
    const offset = this.out.get(ab);
    if (offset !== chunk.byteOffset || !this.out.delete(ab)) return;
    if (this.free.length < this.keep) this.free.push(Buffer.from(ab, offset, this.size));
  }

  /** Forgets every buffer: lent ones are not taken back any more. */
  clear(): void {
    this.free.length = 0;
    this.out.clear();
  }
}
