/**
 * SSH host keys: ed25519 and RSA (3072 bits), generated on first start into the host key folder
 * (mode 0600) and kept, so clients see the same fingerprints after a restart.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';
import { sshFingerprint } from '../../core/ssh-keys.ts';

/** A host key: its private key (OpenSSH format) and public facts. */
export interface HostKey {
  type: 'ed25519' | 'rsa';
  file: string;
  privateKey: string;
  publicKey: string;
  fingerprint: string;
}

const KINDS = [
  { type: 'ed25519' as const, file: 'ssh_host_ed25519_key', opts: {} },
  { type: 'rsa' as const, file: 'ssh_host_rsa_key', opts: { bits: 3072 } },
];

function fingerprintOf(publicLine: string): string {
  const b64 = publicLine.trim().split(/\s+/)[1] ?? '';
  return sshFingerprint(Buffer.from(b64, 'base64'));
}

/**
 * A new key pair in OpenSSH format that ssh2 itself can read back. ssh2 1.17.0's generator drops
 * a leading zero byte of an ed25519 public key (mscdex/ssh2#1513, about 1 key in 256), and such a
 * key, once written, would stop every later start; so each pair is parsed before it is used,
 * and made again if it does not parse.
 */
export function generatePair(type: HostKey['type'], opts: object, generate = ssh2.utils.generateKeyPairSync): { private: string; public: string } {
  for (let attempt = 1; ; attempt++) {
    const pair = generate(type, { ...opts, comment: 'sealdrop host key' } as never);
    const ok = [pair.private, pair.public].every((k) => !(ssh2.utils.parseKey(k) instanceof Error));
    if (ok) return pair;
    if (attempt >= 16) throw new Error(`could not generate a readable ${type} host key`);
  }
}

/** Loads the host keys from `dir`, generating missing ones; `onGenerated` is told about new keys. */
export function loadHostKeys(dir: string, onGenerated: (key: HostKey) => void = () => undefined): HostKey[] {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return KINDS.map(({ type, file, opts }) => {
    const privFile = path.join(dir, file);
    const pubFile = `${privFile}.pub`;
    if (!existsSync(privFile)) {
      const pair = generatePair(type, opts);
      writeFileSync(privFile, pair.private, { mode: 0o600, flag: 'wx' });
      writeFileSync(pubFile, `${pair.public}\n`, { mode: 0o644 });
      const key = { type, file: privFile, privateKey: pair.private, publicKey: pair.public, fingerprint: fingerprintOf(pair.public) };
      onGenerated(key);
      return key;
    }
    const privateKey = readFileSync(privFile, 'utf8');
    const parsed = ssh2.utils.parseKey(privateKey);
    if (parsed instanceof Error) throw new Error(`cannot read host key ${privFile}: ${parsed.message}`);
    const one = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!one) throw new Error(`cannot read host key ${privFile}`);
    const publicKey = `${one.type} ${one.getPublicSSH().toString('base64')}`;
    return { type, file: privFile, privateKey, publicKey, fingerprint: fingerprintOf(publicKey) };
  });
}
