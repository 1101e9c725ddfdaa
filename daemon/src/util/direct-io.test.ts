import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { allocAligned, alignedBuffersStatus, alignedView, alignUp, DIRECT_ALIGN, isAligned } from './direct-io.ts';

describe('the direct-io addon', () => {
  it('is built (npm install compiles daemon/native/direct-io with node-gyp: Debian python3, make, g++)', () => {
    const status = alignedBuffersStatus();
    expect(status, 'reason' in status ? status.reason : '').toEqual({ available: true });
  });

  it('tells the misalignment of an ArrayBuffer, a typed array and a DataView, and refuses bad arguments', () => {
    const m = createRequire(process.cwd() + '/')('@sealdrop/direct-io') as { misalignment(v: unknown, a?: number): number };
    const b = Buffer.allocUnsafeSlow(3 * DIRECT_ALIGN);
    const base = m.misalignment(b.buffer, DIRECT_ALIGN);
    expect(m.misalignment(b, DIRECT_ALIGN)).toBe(base);
    expect(m.misalignment(b.subarray(5), DIRECT_ALIGN)).toBe((base + 5) % DIRECT_ALIGN);
    expect(m.misalignment(new DataView(b.buffer, 7), DIRECT_ALIGN)).toBe((base + 7) % DIRECT_ALIGN);
    expect(m.misalignment(new Uint32Array(b.buffer, 8), 8)).toBe((base + 8) % 8);
    expect(() => m.misalignment(b, 3000)).toThrow(/power of two/);
    expect(() => m.misalignment(b, 0)).toThrow(/power of two/);
    expect(() => m.misalignment('text', 4096)).toThrow(/ArrayBuffer/);
    expect(() => m.misalignment(b)).toThrow(/two arguments/);
  });
});

describe('aligned buffers', () => {
  it('start at a multiple of DIRECT_ALIGN, and the view of their ArrayBuffer is found again', () => {
    for (const size of [DIRECT_ALIGN, 64 * 1024, 1024 * 1024, 5000]) {
      const b = allocAligned(size) as Buffer;
      expect(b.length).toBe(size);
      expect(b.buffer.byteLength).toBe(size + DIRECT_ALIGN);
      expect(isAligned(b)).toBe(size % DIRECT_ALIGN === 0);
      const again = alignedView(b.buffer as ArrayBuffer, size) as Buffer;
      expect(again.byteOffset).toBe(b.byteOffset);
      // One byte in: neither the memory nor (here) the length is aligned.
      expect(isAligned(b.subarray(1))).toBe(false);
      expect(isAligned(b.subarray(DIRECT_ALIGN))).toBe(size % DIRECT_ALIGN === 0);
    }
    // An ArrayBuffer too small for the view it should hold.
    expect(alignedView(new ArrayBuffer(100), 100 + DIRECT_ALIGN)).toBeNull();
    expect([0, 1, 4095, 4096, 4097].map(alignUp)).toEqual([0, 4096, 4096, 4096, 8192]);
  });
});
