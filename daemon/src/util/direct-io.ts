/**
 * Buffers whose memory is aligned for O_DIRECT writes, through the optional addon
 * daemon/native/direct-io (Node gives JavaScript no address of a buffer).
 *
 * Why the blob store can write past the page cache (store/fs-blob-store.ts, with
 * storage.directWrites): on some VMs (this Firecracker one: lazily initialised memory, a balloon
 * that reports freed pages to the host) a write that grows the page cache into memory the
 * guest has not used lately is expensive: measured here, 1 GiB written in page-aligned 1 MiB writes with
 * fdatasync every 32 MiB cost 0.24 s of system CPU when the pages had just been freed and
 * 2.7-3.9 s when they had not, at 240-340 MB/s instead of 1.6-1.8 GB/s. The same writes with
 * O_DIRECT cost 0.09 s at 1.8-2.0 GB/s, whatever the memory did before. The price: the blob is
 * not cached, so a download soon after reads it from the disk (here ~1 GB/s at most). It is
 * off by default: see README, "Disk writes".
 */
import { createRequire } from 'node:module';

/**
 * Alignment of the memory, the length and the file offset of every O_DIRECT write: the page
 * size, a multiple of every logical block size in common use (512 and 4096).
 */
export const DIRECT_ALIGN = 4096;

interface DirectIoAddon {
  misalignment(view: ArrayBuffer | ArrayBufferView, alignment: number): number;
}

let loaded: { addon: DirectIoAddon } | { reason: string } | undefined;

function load(): { addon: DirectIoAddon } | { reason: string } {
  if (loaded) return loaded;
  try {
    loaded = { addon: createRequire(import.meta.url)('@sealdrop/direct-io') as DirectIoAddon };
  } catch (err) {
    loaded = { reason: `the optional addon @sealdrop/direct-io is not built (${(err as Error).message.split('\n')[0]})` };
  }
  return loaded;
}

/** Whether aligned buffers can be made in this thread, or why not. */
export function alignedBuffersStatus(): { available: true } | { available: false; reason: string } {
  const l = load();
  return 'addon' in l ? { available: true } : { available: false, reason: l.reason };
}

/** Rounds `n` up to a multiple of DIRECT_ALIGN. */
export function alignUp(n: number): number {
  return Math.ceil(n / DIRECT_ALIGN) * DIRECT_ALIGN;
}

/**
 * A Buffer of `size` bytes (uninitialised) whose first byte lies at a multiple of DIRECT_ALIGN,
 * inside an ArrayBuffer of `size + DIRECT_ALIGN` bytes; null without the addon.
 */
export function allocAligned(size: number): Buffer | null {
  return alignedView(Buffer.allocUnsafeSlow(size + DIRECT_ALIGN).buffer as ArrayBuffer, size);
}

/**
 * The aligned `size`-byte view of an ArrayBuffer made by allocAligned (given back by another
 * thread, say), or null without the addon or if it does not hold one.
 */
export function alignedView(buffer: ArrayBuffer, size: number): Buffer | null {
  const l = load();
  if (!('addon' in l)) return null;
  const offset = (DIRECT_ALIGN - l.addon.misalignment(buffer, DIRECT_ALIGN)) % DIRECT_ALIGN;
  return offset + size <= buffer.byteLength ? Buffer.from(buffer, offset, size) : null;
}

/** Whether `view`'s memory and length are multiples of DIRECT_ALIGN (false without the addon). */
export function isAligned(view: Uint8Array): boolean {
  if (view.length % DIRECT_ALIGN !== 0) return false;
  const l = load();
  return 'addon' in l && l.addon.misalignment(view, DIRECT_ALIGN) === 0;
}
