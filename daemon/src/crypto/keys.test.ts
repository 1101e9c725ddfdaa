import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { isSealdropError } from '../core/errors.ts';
import { checkClientWrap, generateSecuPassKey, inspectClientKeyPair, unlockPrivateKey, unwrapSessionKey, wrapSessionKey } from './keys.ts';

const CHEAP = { passes: 1, parallelism: 1, memoryExponent: 10 };

describe('SecuPass keys', () => {
  it('uses the real argon2 settings by default: t=3, p=4, 64 MiB, and a v4 key that advertises SEIPDv1 only', async () => {
    const key = await generateSecuPassKey('real@example.org', 'real secupass value', { passes: 3, parallelism: 4, memoryExponent: 16 });
    const priv = await openpgp.readPrivateKey({ armoredKey: key.privateKey });
    expect(priv.keyPacket.version).toBe(4);
    const s2k = (priv.keyPacket as unknown as { s2k: { type: string; t: number; p: number; encodedM: number } }).s2k;
    expect(s2k).toMatchObject({ type: 'argon2', t: 3, p: 4, encodedM: 16 });
    const pub = await openpgp.readKey({ armoredKey: key.publicKey });
    const { selfCertification } = await pub.getPrimaryUser();
    expect(selfCertification.features?.[0] ?? 0).toBe(1 /* features: modification detection (SEIPDv1) only */);
    const started = Date.now();
    const unlocked = await unlockPrivateKey(key.privateKey, 'real secupass value');
    expect(Date.now() - started).toBeGreaterThan(50); // memory-hard, not a fast KDF
    expect(unlocked.isDecrypted()).toBe(true);
  });

  it('wraps and unwraps session keys; a wrong SecuPass is a clear error', async () => {
    const key = await generateSecuPassKey('a@example.org', 'the secupass', CHEAP);
    const sessionKey = crypto.getRandomValues(new Uint8Array(32));
    const pkesk = await wrapSessionKey(sessionKey, key.publicKey);
    expect(pkesk[0]).toBe(0xc1); // new-format tag 1
    checkClientWrap(pkesk, key.encryptionKeyId);
    const unlocked = await unlockPrivateKey(key.privateKey, 'the secupass');
    expect(Buffer.from(await unwrapSessionKey(pkesk, unlocked)).equals(Buffer.from(sessionKey))).toBe(true);
    await expect(unlockPrivateKey(key.privateKey, 'nope')).rejects.toSatisfy((e) => isSealdropError(e, 'SEALDROP_E_WRONG_SECUPASS'));
    expect(() => checkClientWrap(pkesk, '0000000000000000')).toThrow(/addressed to key/);
    expect(() => checkClientWrap(new Uint8Array([1, 2, 3]), key.encryptionKeyId)).toThrow(/PKESK/);
  });

  it('accepts a client key pair only if it is v4, valid and encrypted', async () => {
    const good = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: 'c@example.org' }], passphrase: 'pw pw pw pw', format: 'armored' });
    const info = await inspectClientKeyPair(good.publicKey, good.privateKey);
    expect(info.fingerprint).toMatch(/^[0-9a-f]{40}$/);
    const plain = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: 'c@example.org' }], format: 'armored' });
    const code = async (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string; message: string }) => `${e.code}: ${e.message}`);
    expect(await code(inspectClientKeyPair(plain.publicKey, plain.privateKey))).toMatch(/SEALDROP_E_KEY_INVALID: privateKey must be encrypted/);
    expect(await code(inspectClientKeyPair(plain.publicKey, good.privateKey))).toMatch(/different keys/);
    expect(await code(inspectClientKeyPair('garbage', good.privateKey))).toMatch(/not a readable OpenPGP key/);
    expect(await code(inspectClientKeyPair(good.privateKey, good.privateKey))).toMatch(/secret key material/);
    const v6 = await openpgp.generateKey({ type: 'curve25519', userIDs: [{ email: 'c@example.org' }], passphrase: 'pw pw pw pw', format: 'armored', config: { v6Keys: true } });
    expect(await code(inspectClientKeyPair(v6.publicKey, v6.privateKey))).toMatch(/only v4 keys/);
  });
});
