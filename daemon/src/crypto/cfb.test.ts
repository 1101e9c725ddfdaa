import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cfbThroughCbc, createAes256CfbDecryptor, createAes256CfbEncryptor } from './cfb.ts';

/** Deterministic pseudo-random chunk lengths in [0, max]. */
function cuts(total: number, seed: number, max: number): number[] {
  let s = seed;
  const out: number[] = [];
  for (let left = total; left > 0; ) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const n = Math.min(left, s % (max + 1));
    out.push(n);
    left -= n;
  }
  return out;
}

describe('AES-256-CFB through CBC + XOR', () => {
  it("gives Node's aes-256-cfb bytes for any chunking, across blocks and the XOR span", () => {
    expect(cfbThroughCbc()).toBe(true); // Node 20 runs WebAssembly SIMD: the fast path is what is tested
    const key = randomBytes(32);
    for (const iv of [Buffer.alloc(16), randomBytes(16)]) {
      const expected = (data: Buffer) => createCipheriv('aes-256-cfb', key, iv).update(data);
      for (const size of [0, 1, 15, 16, 17, 31, 32, 33, 65_535, 65_536, 65_537, 200_003]) {
        const data = randomBytes(size);
        const want = expected(data);
        for (const chunking of [[size], cuts(size, size + 1, 37), cuts(size, size + 2, 70_000), cuts(size, size + 3, 17)]) {
          const enc = createAes256CfbEncryptor(key, iv);
          const parts: Buffer[] = [];
          let at = 0;
          for (const n of chunking) {
            const part = enc.update(data.subarray(at, at + n));
            expect(part.length).toBe(n);
            parts.push(part);
            at += n;
          }
          expect(enc.final().length).toBe(0);
          expect(Buffer.concat(parts).equals(want), `size ${size}, ${chunking.length} chunks`).toBe(true);
        }
      }
    }
  });

  it('does not read the input after update returned (the caller may reuse it)', () => {
    const key = randomBytes(32);
    const iv = Buffer.alloc(16);
    const data = randomBytes(100_000);
    const want = createCipheriv('aes-256-cfb', key, iv).update(data);
    const enc = createAes256CfbEncryptor(key, iv);
    const parts: Buffer[] = [];
    for (const [from, to] of [[0, 7], [7, 60_000], [60_000, 60_009], [60_009, 100_000]] as const) {
      const chunk = Buffer.from(data.subarray(from, to));
      parts.push(Buffer.from(enc.update(chunk)));
      chunk.fill(0xa5);
    }
    expect(Buffer.concat(parts).equals(want)).toBe(true);
  });
});

describe('AES-256-CFB decryption through ECB + XOR', () => {
  it("gives Node's aes-256-cfb plaintext for any chunking, and does not read the input after update returned", () => {
    const key = randomBytes(32);
    for (const iv of [Buffer.alloc(16), randomBytes(16)]) {
      for (const size of [0, 1, 15, 16, 17, 31, 32, 33, 65_535, 65_536, 65_537, 200_003]) {
        const data = randomBytes(size);
        const want = createDecipheriv('aes-256-cfb', key, iv).update(data);
        expect(createCipheriv('aes-256-cfb', key, iv).update(want).equals(data)).toBe(true);
        for (const chunking of [[size], cuts(size, size + 1, 37), cuts(size, size + 2, 70_000), cuts(size, size + 3, 17)]) {
          const dec = createAes256CfbDecryptor(key, iv);
          const parts: Buffer[] = [];
          let at = 0;
          for (const n of chunking) {
            const chunk = Buffer.from(data.subarray(at, at + n));
            const part = Buffer.alloc(n);
            dec.updateInto(chunk, part);
            parts.push(part);
            chunk.fill(0x5a);
            at += n;
          }
          dec.final();
          expect(Buffer.concat(parts).equals(want), `size ${size}, ${chunking.length} chunks`).toBe(true);
        }
      }
    }
  });
});
