import { describe, expect, it } from 'vitest';
import { isSealdropError } from '../core/errors.ts';
import { generateSecuPassKeyIsolated, keyWorkersRunning, keyWorkWatch, MAX_KEY_WORKERS, unlockPrivateKeyIsolated } from './isolated-keys.ts';
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

  it('tells a watcher that key work ran since its last look, even a task that began and ended in between', async () => {
    const watch = keyWorkWatch();
    expect(watch()).toBe(false);
    const task = unlockPrivateKeyIsolated('garbage', 'whatever').catch(() => undefined);
    expect(watch(), 'while the task runs').toBe(true);
    await task;
    expect(watch(), 'nothing since the last look').toBe(false);
    await unlockPrivateKeyIsolated('garbage', 'whatever').catch(() => undefined);
    expect(keyWorkersRunning()).toBe(0);
    expect(watch(), 'a task that came and went between two looks').toBe(true);
    expect(watch()).toBe(false);
  });

  it('reports an unreadable stored key as an error, not a crash', async () => {
    await expect(unlockPrivateKeyIsolated('garbage', 'whatever')).rejects.toThrow(/key work failed/);
    await expect(generateSecuPassKeyIsolated('w@example.org', 'worker secupass', { passes: 1, parallelism: 1, memoryExponent: 99 })).rejects.toThrow(/key work failed/);
  });

  it(`runs at most ${MAX_KEY_WORKERS} key workers at once; the others wait their turn`, async () => {
    const key = await generateSecuPassKeyIsolated('w@example.org', 'worker secupass', CHEAP);
    let most = 0;
    const timer = setInterval(() => (most = Math.max(most, keyWorkersRunning())), 1);
    try {
      const tasks = Array.from({ length: MAX_KEY_WORKERS + 3 }, (_, i) => (i % 2 ? unlockPrivateKeyIsolated(key.privateKey, 'worker secupass') : unlockPrivateKeyIsolated(key.privateKey, 'wrong').catch((e: unknown) => e)));
      const results = await Promise.all(tasks);
      expect(results.filter((r) => isSealdropError(r, 'SEALDROP_E_WRONG_SECUPASS')).length).toBe(Math.ceil((MAX_KEY_WORKERS + 3) / 2));
    } finally {
      clearInterval(timer);
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(MAX_KEY_WORKERS);
    expect(keyWorkersRunning()).toBe(0);
  });
});
