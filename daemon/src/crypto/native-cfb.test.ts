import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { createAes256CfbEncryptor } from './cfb.ts';
import { createNativeCfb, nativeCfbStatus, useNativeCfb } from './native-cfb.ts';
import { prng } from '../../test/support/prng.ts';

/** The addon itself, typed loosely: the tests also pass it wrong arguments. */
interface Addon {
  create(key: unknown, iv: unknown): object;
  update(state: unknown, input: unknown, output: unknown, hash: unknown): void;
  digest(state: unknown): Buffer;
  wipe(state: unknown): void;
}

function loadAddon(): Addon {
  return createRequire(import.meta.url)('@sealdrop/cfb-sha1') as Addon;
}

function native() {
  const cfb = createNativeCfb(randomBytes(32), randomBytes(16));
  if (cfb === null) {
    const status = nativeCfbStatus();
    throw new Error(`the native AES-256-CFB + SHA-1 addon is not in use (${status.native ? '?' : status.reason}): npm install compiles it with node-gyp, which needs python3, make and g++ (Debian packages python3, make, g++), and it runs on x86-64 CPUs with AES-NI and the SHA extensions`);
  }
  return cfb;
}

describe('the cfb-sha1 addon', () => {
  it('is built and runs on this CPU', () => {
    native().wipe();
    expect(nativeCfbStatus()).toEqual({ native: true });
  });

  it('gives the bytes of node:crypto AES-256-CFB and SHA-1 for any chunking, hash cut-off and in-place use', () => {
    native().wipe();
    const addon = loadAddon();
    const random = prng(42);
    for (let trial = 0; trial < 120; trial++) {
      const key = randomBytes(32);
      const iv = randomBytes(16);
      // Sizes around the 16- and 64-byte blocks, and a few of more than one 64 KiB unit.
      const size = trial < 40 ? trial : Math.floor(random() * 5000) + (trial % 4 === 0 ? 140_000 : 0);
      const data = randomBytes(size);
      const hashed = trial % 5 === 0 ? size : Math.floor(random() * (size + 1));
      const state = addon.create(key, iv);
      const out = Buffer.alloc(size);
      for (let off = 0; off < size; ) {
        let n = Math.min(size - off, 1 + Math.floor(random() * (trial % 2 === 0 ? 200 : 70_000)));
        if (off < hashed && off + n > hashed) n = hashed - off;
        if (random() < 0.3) {
          const inPlace = Buffer.from(data.subarray(off, off + n));
          addon.update(state, inPlace, inPlace, off < hashed);
          inPlace.copy(out, off);
        } else {
          addon.update(state, data.subarray(off, off + n), out.subarray(off, off + n), off < hashed);
        }
        off += n;
      }
      const where = `trial ${trial}: ${size} bytes, ${hashed} hashed`;
      expect(out.equals(createCipheriv('aes-256-cfb', key, iv).update(data)), where).toBe(true);
      expect(addon.digest(state).toString('hex'), where).toBe(createHash('sha1').update(data.subarray(0, hashed)).digest('hex'));
      addon.wipe(state);
    }
  });

  it('refuses misuse with clear errors instead of crashing', () => {
    const addon = loadAddon();
    const key = randomBytes(32);
    const iv = randomBytes(16);
    expect(() => addon.create(key.subarray(1), iv)).toThrow(/key must be a Uint8Array of 32 bytes/);
    expect(() => addon.create(key, new Uint16Array(8))).toThrow(/IV must be a Uint8Array of 16 bytes/);
    expect(() => addon.create('key', iv)).toThrow(/key must be/);
    const state = addon.create(key, iv);
    const buf = Buffer.alloc(100);
    expect(() => addon.update({}, buf, buf, true)).toThrow(/not a state made by create/);
    expect(() => addon.update(state, buf, buf.subarray(1), true)).toThrow(/same length/);
    expect(() => addon.update(state, buf.subarray(0, 60), buf.subarray(30, 90), true)).toThrow(/overlap/);
    expect(() => addon.update(state, buf, [1, 2], true)).toThrow(/must be Uint8Arrays/);
    expect(() => addon.update(state, buf, buf, 'yes')).toThrow(/hash must be a boolean/);
    addon.digest(state);
    expect(() => addon.digest(state)).toThrow(/digest was already taken/);
    expect(() => addon.update(state, buf, buf, true)).toThrow(/digest was already taken/);
    addon.update(state, buf, buf, false); // encryption goes on after the digest (the MDC value)
    addon.wipe(state);
    expect(() => addon.update(state, buf, buf, false)).toThrow(/wiped/);
    addon.wipe(state); // twice is fine
  });

  it('is what createAes256CfbEncryptor returns here, and the fallback gives the same bytes', () => {
    const key = randomBytes(32);
    const iv = randomBytes(16);
    const data = randomBytes(200_003);
    const expected = createCipheriv('aes-256-cfb', key, iv).update(data);
    const run = (): Buffer => {
      const cfb = createAes256CfbEncryptor(key, iv);
      const parts = [data.subarray(0, 5), data.subarray(5, 70_000), data.subarray(70_000)].map((p) => cfb.update(p));
      cfb.final();
      return Buffer.concat(parts);
    };
    expect(createAes256CfbEncryptor(key, iv).constructor.name).toBe('NativeCfb');
    expect(run().equals(expected)).toBe(true);
    useNativeCfb(false);
    try {
      expect(createAes256CfbEncryptor(key, iv).constructor.name).not.toBe('NativeCfb');
      expect(nativeCfbStatus()).toEqual({ native: false, reason: 'turned off (tests)' });
      expect(run().equals(expected)).toBe(true);
    } finally {
      useNativeCfb(true);
    }
  });
});
