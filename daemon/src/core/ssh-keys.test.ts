import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSshPublicKey } from './ssh-keys.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-sshkeys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function keygen(type: string, bits?: number): { line: string; fingerprint: string } {
  const file = path.join(dir, `k-${type}-${bits ?? 0}-${n++}`);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', 'me@laptop', '-f', file]);
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-f', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1] as string;
  return { line: readFileSync(`${file}.pub`, 'utf8'), fingerprint };
}

describe('parseSshPublicKey', () => {
  it('reads OpenSSH public keys and computes the same fingerprint as ssh-keygen', () => {
    for (const [type, bits] of [['ed25519'], ['ecdsa', 256], ['rsa', 3072]] as const) {
      const k = keygen(type, bits);
      const parsed = parseSshPublicKey(k.line);
      expect(parsed.fingerprint).toBe(k.fingerprint);
      expect(parsed.comment).toBe('me@laptop');
    }
  });

  it('refuses weak, unknown, inconsistent and malformed keys with clear reasons', () => {
    const rsa1024 = keygen('rsa', 1024);
    expect(() => parseSshPublicKey(rsa1024.line)).toThrow(/at least 2048 bits/);
    expect(() => parseSshPublicKey('ssh-dss AAAA')).toThrow(/not accepted/);
    expect(() => parseSshPublicKey('garbage')).toThrow(/expected/);
    expect(() => parseSshPublicKey('ssh-ed25519 !!!')).toThrow(/not base64/);
    const ed = keygen('ed25519').line.split(' ');
    expect(() => parseSshPublicKey(`ssh-rsa ${ed[1]}`)).toThrow(/the key data says ssh-ed25519/);
    expect(() => parseSshPublicKey(`ssh-ed25519 ${(ed[1] as string).slice(0, 30)}`)).toThrow(/not a valid|not base64/);
    expect(() => parseSshPublicKey(42)).toThrow(/one OpenSSH public key line/);
  });
});
