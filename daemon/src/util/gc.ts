/**
 * Garbage collection the daemon asks for: young collections paced by the bytes a protocol
 * received (YoungGcPacer), and one full collection when a burst of uploads is over
 * (IdleReclaimer).
 *
 * Young collections paced by bytes.
 *
 * ssh2 allocates a Buffer per socket read, per SSH packet that spans two reads and per SFTP
 * packet it assembles: about 2.5 bytes of short-lived buffers per byte uploaded. V8 frees them
 * in its young collections, but it starts one for their sake only once 32 MB of young buffers
 * have piled up (twice its default maximum semi-space, whatever --max-semi-space-size says),
 * so a single 1 GiB SFTP upload held ~30 MB of dead buffers at any time. A young collection
 * after every few MiB received keeps that pile at a few MB. Measured (1 GiB uploads, fresh
 * daemon): peak RSS 169-179 MB without, 150-160 with one per 4 MiB of WRITE data, and (three
 * uploads 3 s apart, two daemons each way, alternating) 142-151 with one per 2 MiB against
 * 148-160 per 4 MiB, at the same speed.
 *
 * Node exposes no collector API without --expose-gc; the flag is set here at start and the
 * function taken from a context of its own, so the global scope of the daemon does not get a
 * `gc`. Where that fails the pacer does nothing and says why once.
 *
 * The function's argument differs between V8 versions: Node 20's (V8 11.3) runs a young
 * collection for any truthy argument, an options object such as `{ type: 'major' }` included,
 * and a full one only when called without one; later versions read `{ type }`. `Collector`
 * calls it the way both understand.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/** V8's collector, by kind of collection. */
export interface Collector {
  /** A young-generation collection (a scavenge). */
  minor(): void;
  /** A full collection of every generation (mark-compact). */
  major(): void;
}

type GcFunction = (options?: { type: 'minor' }) => void;

function collectorOf(gc: GcFunction): Collector {
  return { minor: () => gc({ type: 'minor' }), major: () => gc() };
}

let loaded: { collector: Collector } | { reason: string } | undefined;

/** V8's collector, or the reason it is not available. */
export function loadGc(): { collector: Collector } | { reason: string } {
  if (loaded) return loaded;
  try {
    const existing = (globalThis as { gc?: unknown }).gc;
    if (typeof existing === 'function') return (loaded = { collector: collectorOf(existing as GcFunction) });
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('typeof gc === "function" ? gc : undefined');
    loaded = typeof gc === 'function' ? { collector: collectorOf(gc as GcFunction) } : { reason: 'V8 did not expose its collector (--expose-gc had no effect)' };
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
    private readonly collector: Collector | null,
    readonly everyBytes: number,
  ) {}

  /** Counts bytes received; collects once enough came since the last collection. */
  note(bytes: number): void {
    if (this.collector === null) return;
    this.pending += bytes;
    if (this.pending < this.everyBytes) return;
    this.pending = 0;
    this.collections++;
    this.collector.minor();
  }
}

/** Options of IdleReclaimer. */
export interface IdleReclaimerOptions {
  /** Whether transfers are running now. */
  busy: () => boolean;
  /** V8's collector (null: none). */
  collector: Collector | null;
  /** Gives freed malloc memory back to the system (util/malloc-trim.ts), if it can. */
  trim?: (() => void) | undefined;
  /** Milliseconds between checks; the reclaim follows the end of a burst within one to two. */
  intervalMs: number;
  /**
   * Bytes transferred since the last reclaim from which the end of the last running transfer
   * reclaims at once (transferEnded) instead of at the next check (default: never at once).
   */
  earlyBytes?: number | undefined;
}

/**
 * After the last transfer of a burst: one full collection, then malloc gives back what it
 * freed. An idle process is rarely collected by V8 at all, so what a transfer left behind (its
 * old-generation garbage, the heap grown for it, freed malloc chunks) stayed resident until the
 * next transfer: RSS crept up from upload to upload. Costs one full collection (~10-30 ms)
 * per burst, none while transfers run or the daemon stays idle. Measured, six 1 GiB SFTP
 * uploads 4 s apart on one fresh daemon: peaks 142-148 MB (two daemons) where they crept from
 * 143 to 157 MB when the reclaim ran a young collection only (Node 20 read the `{ type: 'major' }`
 * it was first called with as "young"; see Collector). (Ending the idle encryption worker too
 * took the idle RSS lower, but the next uploads then peaked ~8 MB higher; not done.)
 *
 * When a burst moved enough bytes, the reclaim runs as its last transfer ends (transferEnded),
 * in the same turn, while that transfer's session is still open. A full collection discards the
 * optimized code that refers to objects it finds dead; collected a second later, the session's
 * objects are dead and the next upload recompiles its hot path. Measured (trace-opt, 1 GiB SFTP
 * uploads): ~100 functions optimized again per upload when reclaimed a second later, ~45 when
 * reclaimed at the end, ~10 when never reclaimed; the daemon spent ~0.065 CPU-s per GiB less.
 * Small files do not do it: a burst of many would collect after each one.
 */
export class IdleReclaimer {
  private timer: NodeJS.Timeout | undefined;
  private wasBusy = false;
  /** Bytes of the transfers that ended since the last reclaim. */
  private endedBytes = 0;
  /** Reclaims done so far (for tests and measurements). */
  reclaims = 0;

  constructor(private readonly options: IdleReclaimerOptions) {}

  /** Starts the checks (the timer does not keep the process alive). */
  start(): void {
    if (this.timer || this.options.collector === null) return;
    this.timer = setInterval(() => this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check: reclaims if transfers ran at the previous check and none runs now. */
  check(): boolean {
    if (this.options.busy()) {
      this.wasBusy = true;
      return false;
    }
    if (!this.wasBusy) return false;
    return this.reclaim();
  }

  /**
   * A transfer of `bytes` ended. Reclaims now if no transfer runs any more and the transfers
   * since the last reclaim moved at least `earlyBytes`; otherwise the next check does.
   */
  transferEnded(bytes: number): boolean {
    this.endedBytes += bytes;
    const early = this.options.earlyBytes;
    if (early !== undefined && this.endedBytes >= early && !this.options.busy()) return this.reclaim();
    // Shorter than a check interval, it may have run between two: the next check reclaims.
    this.wasBusy = true;
    return false;
  }

  private reclaim(): boolean {
    if (this.options.collector === null) return false;
    this.wasBusy = false;
    this.endedBytes = 0;
    this.options.collector.major();
    this.options.trim?.();
    this.reclaims++;
    return true;
  }
}
