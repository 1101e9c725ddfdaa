import { describe, expect, it } from 'vitest';
import { isSealdropError } from '../core/errors.ts';
import { generateSecuPassKeyIsolated, unlockPrivateKeyIsolated } from './isolated-keys.ts';
import { unwrapSessionKey, wrapSessionKey } from './keys.ts';

const CHEAP = { passes: 1, parallelism: 1, memoryExponent: 10 };

describe('argon2 key work in a worker thread', () => {
  it('generates a SecuPass key and unlocks it to a usable private key; a wrong SecuPass is SEALDROP_E_WRONG_SECUPASS', async () => {
    const key = await generateSecuPassKeyIsolated('w@example.org', 'worker secupass', CHEAP);
    expect(key.fingerprint).toMatch(/^[0-9a-f]{40}$/);
    expect(key.privateKey).toMatch(/BEGIN PGP PRIVATE KEY BLOCK/);
    const unlocked = await unlockPrivateKeyIsolated(key.privateKey, 'worker secupass');
    expect(unlocked.isDecrypted()).toBe(true);
    expect(unlocked.getFingerprint()).toBe(key.fingerprint);
    const sessionKey = crypto.getRandomValues(new Uint8Array(32));
    const pkesk = await wrapSessionKey(sessionKey, key.publicKey);
    expect(Buffer.from(await unwrapSessionKey(pkesk, unlocked)).equals(Buffer.from(sessionKey))).toBe(true);
    await expect(unlockPrivateKeyIsolated(key.privateKey, 'not it')).rejects.toSatisfy((e) => isSealdropError(e, 'SEALDROP_E_WRONG_SECUPASS'));
  });

  it('reports an unreadable stored key as an error, not a crash', async () => {
    await expect(unlockPrivateKeyIsolated('garbage', 'whatever')).rejects.toThrow(/key work failed/);
    await expect(generateSecuPassKeyIsolated('w@example.org', 'worker secupass', { passes: 1, parallelism: 1, memoryExponent: 99 })).rejects.toThrow(/key work failed/);
  });
});
