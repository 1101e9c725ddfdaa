/**
 * AES-256-CFB encryption fused with the SHA-1 of the same plaintext, from the optional addon
 * daemon/native/cfb-sha1 (C, AES-NI and the SHA extensions), which an SEIPDv1 packet needs
 * both of: the cipher over the whole plaintext stream and the MDC's hash over all of it but
 * the MDC value.
 *
 * CFB encryption is a serial chain, so the AES unit mostly waits on its own latency; SHA-1 run
 * in the same loop fills those cycles. Measured here, 1 GiB in 64 KiB calls: 1.12-1.2 s for
 * both fused, against ~1.3 s for CFB through Node's CBC + XOR (cfb.ts) plus ~0.65-0.85 s for
 * Node's SHA-1, and the output goes into a buffer the caller gives (Node's cipher allocates
 * one per call).
 *
 * Without the addon (no compiler at install), or on a CPU without AES-NI and the SHA
 * extensions, or on another architecture, the encoder uses cfb.ts and node:crypto; the bytes
 * are the same either way (tested), and the daemon logs which path it runs once at start.
 */
import { createRequire } from 'node:module';
import type { StreamEncryptor } from './cfb.ts';

/** What the addon exports (see cfb_sha1.c). */
interface CfbSha1Addon {
  supported(): boolean;
  create(key: Uint8Array, iv: Uint8Array): object;
  update(state: object, input: Uint8Array, output: Uint8Array, hash: boolean): void;
  digest(state: object): Buffer;
  wipe(state: object): void;
}

let loaded: { addon: CfbSha1Addon } | { reason: string } | undefined;
let enabled = true;

function load(): { addon: CfbSha1Addon } | { reason: string } {
  if (loaded) return loaded;
  try {
    const addon = createRequire(import.meta.url)('@sealdrop/cfb-sha1') as CfbSha1Addon;
    loaded = addon.supported() ? { addon } : { reason: 'the CPU lacks AES-NI or the SHA extensions (or is not x86)' };
  } catch (err) {
    loaded = { reason: `the optional addon @sealdrop/cfb-sha1 is not built (${(err as Error).message.split('\n')[0]})` };
  }
  return loaded;
}

/** Whether this thread encrypts through the addon, or why not. */
export function nativeCfbStatus(): { native: true } | { native: false; reason: string } {
  if (!enabled) return { native: false, reason: 'turned off (tests)' };
  const l = load();
  return 'addon' in l ? { native: true } : { native: false, reason: l.reason };
}

/**
 * Turns the addon off or on again in this thread (tests compare both paths). Encryptors made
 * before keep their path.
 */
export function useNativeCfb(on: boolean): void {
  enabled = on;
}

/**
 * A CFB encryptor through the addon that can also hash what it encrypts (`hash`), or null if
 * the addon is not in use here. Same bytes as `createCipheriv('aes-256-cfb', key, iv)`.
 */
export function createNativeCfb(key: Uint8Array, iv: Uint8Array): NativeCfb | null {
  if (!enabled) return null;
  const l = load();
  return 'addon' in l ? new NativeCfb(l.addon, l.addon.create(key, iv)) : null;
}

/** See createNativeCfb. The key schedule lives in native memory until final() or wipe(). */
export class NativeCfb implements StreamEncryptor {
  constructor(
    private readonly addon: CfbSha1Addon,
    private readonly state: object,
  ) {}

  /** Encrypts into a new buffer (not hashed). */
  update(data: Uint8Array): Buffer {
    return this.encrypt(data, false);
  }

  /** Encrypts into a new buffer; with `hash`, the plaintext is added to the SHA-1 first. */
  encrypt(data: Uint8Array, hash: boolean): Buffer {
    const out = Buffer.allocUnsafe(data.length);
    this.addon.update(this.state, data, out, hash);
    return out;
  }

  /** Encrypts into `out` (data.length bytes; the same memory as `data` or not overlapping it). */
  encryptInto(data: Uint8Array, out: Uint8Array, hash: boolean): void {
    this.addon.update(this.state, data, out, hash);
  }

  /** The SHA-1 of everything encrypted with `hash`; hashing ends here, encryption goes on. */
  digest(): Buffer {
    return this.addon.digest(this.state);
  }

  final(): Buffer {
    this.wipe();
    return Buffer.alloc(0);
  }

  /** Zeroes the key schedule; any later call throws. */
  wipe(): void {
    this.addon.wipe(this.state);
  }
}
