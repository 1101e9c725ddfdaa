import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, describe, expect, it } from 'vitest';
import { generatePair, loadHostKeys } from './host-keys.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-hostkeys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('host keys', () => {
  it('never keeps a pair ssh2 cannot read back (its ed25519 generator drops a leading zero byte now and then)', () => {
    // The library bug this guards against, shown: within a few thousand keys one does not parse.
    let broken: { private: string; public: string } | undefined;
    let good: { private: string; public: string } | undefined;
    for (let i = 0; i < 5000 && !(broken && good); i++) {
      const pair = ssh2.utils.generateKeyPairSync('ed25519');
      if (ssh2.utils.parseKey(pair.public) instanceof Error || ssh2.utils.parseKey(pair.private) instanceof Error) broken = pair;
      else good ??= pair;
    }
    expect(broken, 'no unreadable ed25519 key in 5000: has ssh2 fixed mscdex/ssh2#1513? then the retry can go').toBeDefined();
    expect(good).toBeDefined();
    // The generator gives the broken pair first, then a readable one (a fresh key could be broken
    // too, now and then: the test would then see a third call).
    let calls = 0;
    const pair = generatePair('ed25519', {}, (() => (++calls === 1 ? broken : good)) as never);
    expect(calls).toBe(2);
    expect(pair).toBe(good);
    expect(ssh2.utils.parseKey(pair.private)).not.toBeInstanceOf(Error);
    expect(ssh2.utils.parseKey(pair.public)).not.toBeInstanceOf(Error);
  });

  it('generates ed25519 and RSA keys once, 0600, and reads the same ones after a restart', () => {
    const generated: string[] = [];
    const first = loadHostKeys(dir, (k) => generated.push(k.type));
    expect(generated).toEqual(['ed25519', 'rsa']);
    expect(first.map((k) => statSync(k.file).mode & 0o777)).toEqual([0o600, 0o600]);
    const again = loadHostKeys(dir, () => generated.push('again'));
    expect(generated).toHaveLength(2);
    expect(again.map((k) => k.fingerprint)).toEqual(first.map((k) => k.fingerprint));
  });
});
