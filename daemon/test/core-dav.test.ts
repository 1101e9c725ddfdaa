/** WebDAV locks and dead properties in the core: conflicts, coverage, tokens, expiry, moves. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Principal } from '../src/core/context.ts';
import { isSealdropError, type ErrorCode } from '../src/core/errors.ts';
import { createHarness, sessionPrincipal, type Harness } from './support/core-harness.ts';

const PW = 'correct horse battery staple';
let h: Harness;
let alice: Principal;
let bob: Principal;

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await expect(promise).rejects.toSatisfy((e: unknown) => {
    if (!isSealdropError(e, code)) throw new Error(`expected ${code}, got ${String((e as Error)?.message)}`);
    return true;
  });
}

beforeEach(async () => {
  h = await createHarness();
  for (const email of ['alice@example.org', 'bob@example.org']) await h.core.accounts.createAccount({ accountId: null, email: 'test' }, { email, role: 'member', password: PW });
  alice = await sessionPrincipal(h, 'alice@example.org', PW);
  bob = await sessionPrincipal(h, 'bob@example.org', PW);
});
afterEach(async () => h.close());

const lockOf = (scope: 'exclusive' | 'shared', depth: 0 | -1 = -1) => ({ scope, depth, owner: null, timeoutSeconds: 600 });

describe('WebDAV locks', () => {
  it('conflicts: exclusive with anything overlapping, shared with exclusive; depth infinity takes in what is below', async () => {
    const dir = await h.core.dav.lock(alice, '/drop/d', lockOf('exclusive'));
    expect(dir.token).toMatch(/^opaquelocktoken:[0-9a-f-]{36}$/);
    await expectCode(h.core.dav.lock(alice, '/drop/d/f.txt', lockOf('shared', 0)), 'SEALDROP_E_LOCKED');
    await expectCode(h.core.dav.lock(alice, '/drop', lockOf('shared')), 'SEALDROP_E_LOCKED');
    // A depth-0 lock above does not cover what is below; another account's view is separate.
    await h.core.dav.lock(alice, '/drop', lockOf('shared', 0));
    await h.core.dav.lock(bob, '/drop/d', lockOf('exclusive'));
    const s1 = await h.core.dav.lock(alice, '/drop/s.txt', lockOf('shared', 0));
    const s2 = await h.core.dav.lock(alice, '/drop/s.txt', lockOf('shared', 0));
    expect(s1.token).not.toBe(s2.token);
    await expectCode(h.core.dav.lock(alice, '/drop/s.txt', lockOf('exclusive', 0)), 'SEALDROP_E_LOCKED');
  });

  it('changes need every touched lock submitted: covering ones, and those below for a whole folder', async () => {
    const dir = await h.core.dav.lock(alice, '/drop/d', lockOf('exclusive'));
    await expectCode(h.core.dav.assertUnlocked(alice, '/drop/d/x/y.txt', new Set()), 'SEALDROP_E_LOCKED');
    await h.core.dav.assertUnlocked(alice, '/drop/d/x/y.txt', new Set([dir.token]));
    await h.core.dav.assertUnlocked(alice, '/drop/other', new Set());
    // Removing /drop touches the lock below it.
    await expectCode(h.core.dav.assertUnlocked(alice, '/drop', new Set(), true), 'SEALDROP_E_LOCKED');
    await h.core.dav.assertUnlocked(alice, '/drop', new Set(), false);
    await h.core.dav.assertUnlocked(bob, '/drop/d', new Set());
  });

  it('refreshes and unlocks only with a token that covers the path; expired locks are gone', async () => {
    const l = await h.core.dav.lock(alice, '/drop/d', { ...lockOf('exclusive'), timeoutSeconds: 10_000_000 });
    expect(l.timeoutSeconds).toBe(h.config.webdav.maxLockSeconds);
    const r = await h.core.dav.refresh(alice, '/drop/d/inner.txt', l.token, 60);
    expect(r.timeoutSeconds).toBe(60);
    await expectCode(h.core.dav.refresh(alice, '/drop/elsewhere', l.token, 60), 'SEALDROP_E_WRONG_STATE');
    await expectCode(h.core.dav.unlock(bob, '/drop/d', l.token), 'SEALDROP_E_CONFLICT');
    await expectCode(h.core.dav.unlock(alice, '/drop/d', 'opaquelocktoken:nope'), 'SEALDROP_E_CONFLICT');
    h.clock.offsetMs = 61_000;
    expect(await h.core.dav.locksCovering(alice, '/drop/d')).toEqual([]);
    await h.core.dav.assertUnlocked(alice, '/drop/d', new Set());
    expect(await h.core.dav.sweep()).toBe(1);
  });
});

describe('WebDAV dead properties', () => {
  it('applies a PROPPATCH in order, all or nothing; moves and copies with the resource; forgets with it', async () => {
    await h.core.dav.patch(alice, '/drop/f', [
      { op: 'set', name: '{urn:z}a', value: '1' },
      { op: 'remove', name: '{urn:z}a' },
      { op: 'set', name: '{urn:z}b', value: '<x xmlns="urn:y">2</x>' },
    ]);
    expect(await h.core.dav.properties(alice, '/drop/f')).toEqual([{ name: '{urn:z}b', value: '<x xmlns="urn:y">2</x>' }]);
    await expectCode(h.core.dav.patch(alice, '/drop/f', [{ op: 'set', name: '{urn:z}c', value: 'x' }, { op: 'set', name: '{urn:z}big', value: 'x'.repeat(70_000) }]), 'SEALDROP_E_TOO_LARGE');
    expect((await h.core.dav.properties(alice, '/drop/f')).map((p) => p.name)).toEqual(['{urn:z}b']);
    expect(await h.core.dav.properties(bob, '/drop/f')).toEqual([]);
    await h.core.dav.patch(alice, '/drop/d/g', [{ op: 'set', name: '{}n', value: 'in dir' }]);
    await h.core.dav.relocate(alice, '/drop/d', '/drop/e', true);
    await h.core.dav.relocate(alice, '/drop/f', '/drop/f2', false);
    const each = await h.core.dav.propertiesEach(alice, ['/drop/d/g', '/drop/e/g', '/drop/f', '/drop/f2']);
    expect([...each].map(([path, props]) => [path, props.length])).toEqual([['/drop/d/g', 1], ['/drop/e/g', 1], ['/drop/f', 0], ['/drop/f2', 1]]);
    await h.core.dav.forget(alice, '/drop/d');
    expect(await h.core.dav.properties(alice, '/drop/d/g')).toEqual([]);
    expect(await h.core.dav.properties(alice, '/drop/e/g')).toHaveLength(1);
  });
});
