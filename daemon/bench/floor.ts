/**
 * The encryption floor: what the work that sealdrop must do for every uploaded byte costs in CPU
 * on this machine — the OpenPGP encryption (AES-256-CFB and the SHA-1 of the MDC, SEIPDv1) —
 * measured in this process the way the daemon does it (64 KiB units): in one pass through the
 * cfb-sha1 addon where it runs (daemon/src/crypto/native-cfb.ts), else through node:crypto (the
 * CFB as CBC + XOR, daemon/src/crypto/cfb.ts, and its SHA-1). With the clients' CPU it bounds
 * how fast any upload to sealdrop can be on this machine's cores.
 */
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import { createAes256CfbEncryptor } from '../src/crypto/cfb.ts';
import { createNativeCfb } from '../src/crypto/native-cfb.ts';

/** CPU seconds per GB (1e9 bytes), best of the tries. */
export interface EncryptionFloor {
  /** The CFB alone, through the cipher the daemon uses. */
  cfb: number;
  /** Node's SHA-1 alone. */
  sha1: number;
  /** Both as the daemon runs them: one native pass, or the two above. */
  total: number;
  native: boolean;
}

const UNIT = 64 * 1024;

function cpuSecondsOf(fn: () => void): number {
  const a = process.cpuUsage();
  fn();
  const b = process.cpuUsage(a);
  return (b.user + b.system) / 1e6;
}

/** Measures AES-256-CFB and SHA-1 over `mib` MiB each, `tries` times; keeps the cheapest. */
export function measureEncryptionFloor(mib = 256, tries = 3): EncryptionFloor {
  const unit = randomBytes(UNIT);
  const units = (mib * 1024 * 1024) / UNIT;
  const gb = (mib * 1024 * 1024) / 1e9;
  let cfb = Infinity;
  let sha1 = Infinity;
  let fused = Infinity;
  const out = Buffer.allocUnsafe(UNIT);
  for (let t = 0; t < tries; t++) {
    const cipher = createAes256CfbEncryptor(randomBytes(32), Buffer.alloc(16));
    cfb = Math.min(cfb, cpuSecondsOf(() => {
      for (let i = 0; i < units; i++) cipher.update(unit);
    }) / gb);
    sha1 = Math.min(sha1, hashCost('sha1', unit, units) / gb);
    const native = createNativeCfb(randomBytes(32), Buffer.alloc(16));
    if (native) {
      fused = Math.min(fused, cpuSecondsOf(() => {
        for (let i = 0; i < units; i++) native.encryptInto(unit, out, true);
      }) / gb);
      native.wipe();
    }
  }
  const native = Number.isFinite(fused);
  return { cfb, sha1, total: native ? fused : cfb + sha1, native };
}

function hashCost(algorithm: string, unit: Buffer, units: number): number {
  const hash = createHash(algorithm);
  return cpuSecondsOf(() => {
    for (let i = 0; i < units; i++) hash.update(unit);
    hash.digest();
  });
}

/** Cores the bounds assume: every one fully usable by the transfer. */
export const CORES = os.availableParallelism();

/**
 * The highest MB/s a transfer can reach when it needs `cpuPerGB` CPU seconds per GB in all and
 * at least `serialPerGB` of them in one thread (one stream's CFB cannot be split).
 */
export function boundMbps(cpuPerGB: number, serialPerGB = 0): number {
  return 1e3 / Math.max(cpuPerGB / CORES, serialPerGB);
}
