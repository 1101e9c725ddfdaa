/**
 * Young collections paced by the bytes a protocol received.
 *
 * ssh2 allocates a Buffer per socket read, per SSH packet that spans two reads and per SFTP
 * packet it assembles: about 2.5 bytes of short-lived buffers per byte uploaded. V8 frees them
 * in its young collections, but it starts one for their sake only once 32 MB of young buffers
 * have piled up (twice its default maximum semi-space, whatever --max-semi-space-size says),
 * so a single 1 GiB SFTP upload held ~30 MB of dead buffers at any time. A young collection
 * after every few MiB received keeps that pile at a few MB. Measured (1 GiB uploads, fresh
 * daemon): peak RSS 146-159 MB with one every 10 ms against 169-173 MB without.
 *
 * Node exposes no collector API without --expose-gc; the flag is set here at start and the
 * function taken from a context of its own, so the global scope of the daemon does not get a
 * `gc`. Where that fails the pacer does nothing and says why once.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type Gc = (options?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let loaded: { gc: Gc } | { reason: string } | undefined;

/** V8's collector function, or the reason it is not available. */
export function loadGc(): { gc: Gc } | { reason: string } {
  if (loaded) return loaded;
  try {
    const existing = (globalThis as { gc?: unknown }).gc;
    if (typeof existing === 'function') return (loaded = { gc: existing as Gc });
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('typeof gc === "function" ? gc : undefined');
    loaded = typeof gc === 'function' ? { gc: gc as Gc } : { reason: 'V8 did not expose its collector (--expose-gc had no effect)' };
  } catch (err) {
    loaded = { reason: `V8's collector is not reachable (${(err as Error).message})` };
  }
  return loaded;
}

/** Runs a young collection each time `everyBytes` more bytes were noted. */
export class YoungGcPacer {
  private pending = 0;
  /** Young collections run so far (for tests and metrics). */
  collections = 0;

  constructor(
    private readonly gc: Gc | null,
    readonly everyBytes: number,
  ) {}

  /** Counts bytes received; collects once enough came since the last collection. */
  note(bytes: number): void {
    if (this.gc === null) return;
    this.pending += bytes;
    if (this.pending < this.everyBytes) return;
    this.pending = 0;
    this.collections++;
    this.gc({ type: 'minor' });
  }
}
