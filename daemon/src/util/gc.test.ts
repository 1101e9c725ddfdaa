import { describe, expect, it } from 'vitest';
import { IdleReclaimer, loadGc, YoungGcPacer } from './gc.ts';

describe('young collections paced by bytes', () => {
  it('collects once per `everyBytes` noted, whatever the pieces', () => {
    const calls: string[] = [];
    const pacer = new YoungGcPacer({ minor: () => calls.push('minor'), major: () => calls.push('major') }, 1000);
    for (const n of [999, 1, 500, 499]) pacer.note(n);
    expect(calls).toEqual(['minor']);
    pacer.note(1);
    pacer.note(5000);
    expect(pacer.collections).toBe(3);
    expect(calls.length).toBe(3);
  });

  it('does nothing without a collector', () => {
    const pacer = new YoungGcPacer(null, 1);
    pacer.note(10);
    expect(pacer.collections).toBe(0);
  });

  it("reaches V8's collector without putting gc into the global scope", async () => {
    const loaded = loadGc();
    if (!('collector' in loaded)) throw new Error(loaded.reason);
    expect(loadGc()).toBe(loaded);
    // vitest does not start node with --expose-gc: the function came from a context of its own.
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe('undefined');
    // A young collection frees the memory of an unreachable young buffer.
    const before = (() => {
      Buffer.allocUnsafeSlow(8 * 1024 * 1024).fill(1); // dropped at once
      return process.memoryUsage().arrayBuffers;
    })();
    loaded.collector.minor();
    for (let i = 0; i < 50 && process.memoryUsage().arrayBuffers > before - 8e6; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(process.memoryUsage().arrayBuffers).toBeLessThanOrEqual(before - 8 * 1024 * 1024);
  });

  it('runs a full collection that frees old-generation garbage, which a young one leaves', async () => {
    const loaded = loadGc();
    if (!('collector' in loaded)) throw new Error(loaded.reason);
    const { collector } = loaded;
    let held: object | null = { payload: new Array(1000).fill(7) };
    const ref = new WeakRef(held);
    // Surviving young collections moves it to the old generation.
    for (let i = 0; i < 3; i++) collector.minor();
    held = null;
    // A WeakRef keeps its target until the job that made or read it ends.
    await tick();
    collector.minor();
    expect(ref.deref(), 'a young collection does not free an old object').toBeDefined();
    await tick();
    // Node 20 runs a young collection for gc({ type: 'major' }); major() must not.
    collector.major();
    expect(ref.deref(), 'a full collection frees it').toBeUndefined();
  });

  it('reclaims once after a burst of transfers ends, never while one runs or while idle', () => {
    let busy = false;
    const calls: string[] = [];
    const reclaimer = new IdleReclaimer({ busy: () => busy, collector: { minor: () => calls.push('gc minor'), major: () => calls.push('gc major') }, trim: () => calls.push('trim'), intervalMs: 1000 });
    expect(reclaimer.check()).toBe(false); // idle since start: nothing to reclaim
    busy = true;
    expect(reclaimer.check()).toBe(false);
    expect(reclaimer.check()).toBe(false);
    busy = false;
    expect(reclaimer.check()).toBe(true);
    expect(calls).toEqual(['gc major', 'trim']);
    expect(reclaimer.check()).toBe(false); // still idle: once per burst
    busy = true;
    reclaimer.check();
    busy = false;
    reclaimer.check();
    expect(reclaimer.reclaims).toBe(2);
    // Without a collector it does nothing (and starts no timer).
    const none = new IdleReclaimer({ busy: () => false, collector: null, intervalMs: 1000 });
    none.start();
    expect(none.check()).toBe(false);
    none.stop();
  });

  it('reclaims as the last transfer of a big burst ends, and lets the next check reclaim after small ones', () => {
    let running = 0;
    const calls: string[] = [];
    const reclaimer = new IdleReclaimer({ busy: () => running > 0, collector: { minor: () => calls.push('gc minor'), major: () => calls.push('gc major') }, trim: () => calls.push('trim'), intervalMs: 1000, earlyBytes: 100 });
    // Two transfers of 60 bytes each: the first ends while the second runs, the second ends the burst.
    running = 1;
    expect(reclaimer.transferEnded(60)).toBe(false);
    running = 0;
    expect(reclaimer.transferEnded(60)).toBe(true);
    expect(calls).toEqual(['gc major', 'trim']);
    expect(reclaimer.check()).toBe(false); // that burst is reclaimed already
    // A small burst that ran between two checks: the next check reclaims it, once.
    expect(reclaimer.transferEnded(10)).toBe(false);
    expect(calls).toHaveLength(2);
    expect(reclaimer.check()).toBe(true);
    expect(reclaimer.check()).toBe(false);
    // After a reclaim the bytes count anew: 95 + 10 reach the bound.
    expect(reclaimer.transferEnded(10)).toBe(false);
    expect(reclaimer.check()).toBe(true);
    expect(reclaimer.transferEnded(95)).toBe(false);
    expect(reclaimer.transferEnded(10)).toBe(true);
    expect(reclaimer.reclaims).toBe(4);
    // Without earlyBytes only the checks reclaim.
    const late = new IdleReclaimer({ busy: () => false, collector: { minor: () => undefined, major: () => undefined }, intervalMs: 1000 });
    expect(late.transferEnded(1 << 30)).toBe(false);
    expect(late.check()).toBe(true);
  });
});

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
