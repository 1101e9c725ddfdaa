/**
 * SecuPassService: the second passphrase that guards a user's private key. Activation (key
 * generated on the server from a SecuPass, or made by the client), change, the public view of
 * the key, and the admin reset that destroys the key and every wrap made for it.
 */
import { randomUUID } from 'node:crypto';
import { generateSecuPassKeyIsolated, unlockPrivateKeyIsolated } from '../crypto/isolated-keys.ts';
import { inspectClientKeyPair, type KeyMaterial } from '../crypto/keys.ts';
import { AccountSchema, SecuPassKeySchema, type Account, type SecuPassKey } from '../store/entities.ts';
import { scrubDeleted } from '../store/orm.ts';
import { audit } from './audit.ts';
import { actorOf, inTx, readEm, requireLogin, type Actor, type CoreDeps, type Em, type Principal } from './context.ts';
import type { DeliveryService } from './deliveries.ts';
import { fail } from './errors.ts';
import { verifyPassword } from './passwords.ts';
import { clearHits, countHit, currentCount, retryAfterSeconds } from './rate-limit.ts';
import { checkPasswordPolicy, normalizeEmail } from './validation.ts';

/** Public view of a SecuPass key. */
export interface KeyView {
  id: string;
  fingerprint: string;
  encryptionKeyId: string;
  publicKey: string;
  origin: string;
  createdAt: string;
  createdFrom: string | null;
}

/** SecuPass keys. */
export class SecuPassService {
  constructor(
    private readonly deps: CoreDeps,
    private readonly deliveries: DeliveryService,
  ) {}

  private now(): Date {
    return this.deps.clock.now();
  }

  /** The account's active (not destroyed) key, or null. */
  async activeKey(em: Em, accountId: string): Promise<SecuPassKey | null> {
    return em.findOne(SecuPassKeySchema, { accountId, destroyedAt: null });
  }

  private async account(em: Em, p: Principal): Promise<Account> {
    const account = await em.findOne(AccountSchema, { id: p.accountId });
    if (!account || account.state !== 'active') throw fail('SEALDROP_E_UNAUTHENTICATED');
    if (account.role === 'service') throw fail('SEALDROP_E_FORBIDDEN', 'service accounts have no SecuPass; the drop folder owner holds the key');
    return account;
  }

  /**
   * Activates the SecuPass. `{secupass}` generates the key on the server (if allowed by the
   * configuration); `{publicKey, privateKey}` stores a key pair made and encrypted by the client.
   * Waiting deliveries move to "awaiting release" and their owners are told.
   */
  async activate(p: Principal, input: { secupass?: unknown; publicKey?: unknown; privateKey?: unknown }): Promise<KeyView> {
    if (p.auth === 'api_token' && !p.scopes.has('fetch') && !p.scopes.has('release')) throw fail('SEALDROP_E_SCOPE', 'this needs the "fetch" or "release" scope');
    const em0 = readEm(this.deps);
    const account = await this.account(em0, p);
    if (await this.activeKey(em0, account.id)) throw fail('SEALDROP_E_SECUPASS_ACTIVE', 'the SecuPass is already active; change it instead, or ask an admin to reset it');
    let material: KeyMaterial;
    let origin: 'server' | 'client';
    if (input.secupass !== undefined) {
      if (!this.deps.config.crypto.serverSideSecupass) throw fail('SEALDROP_E_DISABLED', 'server-side key generation is switched off; generate the key on your device');
      const secupass = checkPasswordPolicy(input.secupass, { minLength: this.deps.config.accounts.secupassMinLength, email: account.email, field: 'secupass' });
      if (account.passwordHash && (await verifyPassword(account.passwordHash, secupass))) {
        throw fail('SEALDROP_E_PASSWORD_POLICY', 'secupass must differ from the login password');
      }
      material = await generateSecuPassKeyIsolated(account.email, secupass, this.deps.config.crypto.s2kArgon2);
      origin = 'server';
    } else if (input.publicKey !== undefined || input.privateKey !== undefined) {
      if (typeof input.publicKey !== 'string' || typeof input.privateKey !== 'string') throw fail('SEALDROP_E_VALIDATION', 'publicKey and privateKey must both be armored keys');
      material = await inspectClientKeyPair(input.publicKey, input.privateKey);
      origin = 'client';
    } else {
      throw fail('SEALDROP_E_VALIDATION', 'send {secupass} or {publicKey, privateKey}');
    }
    const now = this.now();
    const key = await inTx(this.deps, async (em) => {
      if (await this.activeKey(em, account.id)) throw fail('SEALDROP_E_SECUPASS_ACTIVE');
      if (await em.findOne(SecuPassKeySchema, { fingerprint: material.fingerprint })) throw fail('SEALDROP_E_KEY_INVALID', 'this key was used before; generate a new one');
      const key = em.create(SecuPassKeySchema, {
        id: randomUUID(),
        accountId: account.id,
        fingerprint: material.fingerprint,
        encryptionKeyId: material.encryptionKeyId,
        publicKey: material.publicKey,
        privateKey: material.privateKey,
        origin,
        createdAt: now,
        createdFrom: p.ip ?? null,
      });
      const actor = actorOf(p);
      await audit(em, { action: 'secupass.activated', actor, targetType: 'account', targetId: account.id, data: { fingerprint: key.fingerprint, origin } }, now);
      await this.deliveries.onKeyActivated(em, account, key, actor);
      return key;
    });
    this.deps.events.emit('secupass.activated', { accountId: account.id });
    return keyView(key);
  }

  /**
   * Changes the SecuPass of the active key (same key pair, new protection): `{currentSecupass,
   * newSecupass}` on the server, or `{privateKey}` re-encrypted by the client.
   */
  async change(p: Principal, input: { currentSecupass?: unknown; newSecupass?: unknown; privateKey?: unknown }): Promise<KeyView> {
    requireLogin(p, 'the SecuPass is changed');
    const em0 = readEm(this.deps);
    const account = await this.account(em0, p);
    const key = await this.activeKey(em0, account.id);
    if (!key?.privateKey) throw fail('SEALDROP_E_SECUPASS_REQUIRED', 'there is no active SecuPass to change');
    let armored: string;
    if (input.privateKey !== undefined) {
      if (typeof input.privateKey !== 'string') throw fail('SEALDROP_E_VALIDATION', 'privateKey must be an armored key');
      const material = await inspectClientKeyPair(key.publicKey, input.privateKey);
      if (material.fingerprint !== key.fingerprint) throw fail('SEALDROP_E_KEY_INVALID', 'privateKey is not the active key');
      armored = material.privateKey;
    } else {
      if (!this.deps.config.crypto.serverSideSecupass) throw fail('SEALDROP_E_DISABLED', 'server-side SecuPass handling is switched off');
      const next = checkPasswordPolicy(input.newSecupass, { minLength: this.deps.config.accounts.secupassMinLength, email: account.email, field: 'newSecupass' });
      if (account.passwordHash && (await verifyPassword(account.passwordHash, next))) throw fail('SEALDROP_E_PASSWORD_POLICY', 'newSecupass must differ from the login password');
      const unlocked = await this.unlockWithLimit(p, key, input.currentSecupass);
      const openpgp = await import('openpgp');
      const reprotected = await openpgp.encryptKey({
        privateKey: unlocked,
        passphrase: next,
        config: { s2kType: openpgp.enums.s2k.argon2, aeadProtect: true, s2kArgon2Params: this.deps.config.crypto.s2kArgon2 },
      });
      armored = reprotected.armor();
    }
    const now = this.now();
    await inTx(this.deps, async (em) => {
      const n = await em.nativeUpdate(SecuPassKeySchema, { id: key.id, destroyedAt: null }, { privateKey: armored });
      if (n !== 1) throw fail('SEALDROP_E_WRONG_STATE', 'the key was reset meanwhile');
      await audit(em, { action: 'secupass.changed', actor: actorOf(p), targetType: 'account', targetId: account.id, data: { fingerprint: key.fingerprint } }, now);
    });
    await scrubDeleted(this.deps.orm);
    return keyView({ ...key, privateKey: armored });
  }

  /**
   * Unlocks a private key with a SecuPass sent to the server, counting wrong attempts per
   * account (SEALDROP_E_RATE_LIMITED once the limit is reached within the window).
   */
  async unlockWithLimit(p: Principal, key: SecuPassKey, secupass: unknown) {
    if (!key.privateKey) throw fail('SEALDROP_E_SECUPASS_REQUIRED');
    const { releaseMaxAttempts: max, releaseWindowSeconds: window } = this.deps.config.accounts;
    const rateKey = `secupass:${p.accountId}`;
    const now = this.now();
    const em = readEm(this.deps);
    if ((await currentCount(em, rateKey, window, now)) >= max) {
      const retry = await retryAfterSeconds(em, rateKey, window, now);
      throw fail('SEALDROP_E_RATE_LIMITED', `too many wrong SecuPass attempts; try again in ${retry} s`, { retryAfter: retry });
    }
    if (typeof secupass !== 'string' || secupass.length === 0 || secupass.length > 1024) throw fail('SEALDROP_E_WRONG_SECUPASS');
    try {
      const unlocked = await unlockPrivateKeyIsolated(key.privateKey, secupass);
      await inTx(this.deps, (tem) => clearHits(tem, rateKey));
      return unlocked;
    } catch (err) {
      await inTx(this.deps, async (tem) => {
        await countHit(tem, rateKey, window, now);
        await audit(tem, { action: 'secupass.wrong', actor: actorOf(p), targetType: 'account', targetId: p.accountId }, now);
      });
      throw err;
    }
  }

  /** The caller's active key: public key, fingerprint and the encrypted private key (for client-side decryption). */
  async getKey(p: Principal): Promise<KeyView & { privateKey: string }> {
    const key = await this.activeKey(readEm(this.deps), p.accountId);
    if (!key?.privateKey) throw fail('SEALDROP_E_SECUPASS_REQUIRED', 'no active SecuPass');
    return { ...keyView(key), privateKey: key.privateKey };
  }

  /**
   * Admin reset: destroys the account's private key and every wrap made for it. The user loses
   * access to every earlier level 3/4 delivery for good; affected senders are told. As an owner,
   * the user's deliveries still awaiting release become unreleasable. Grants nobody access.
   */
  async adminReset(by: Actor, emailInput: unknown): Promise<{ fingerprint: string; accessLost: number; unreleasable: number }> {
    const email = normalizeEmail(emailInput);
    const now = this.now();
    const result = await inTx(this.deps, async (em) => {
      const account = await em.findOne(AccountSchema, { email });
      if (!account) throw fail('SEALDROP_E_NOT_FOUND', `no account ${email}`);
      const key = await this.activeKey(em, account.id);
      if (!key) throw fail('SEALDROP_E_WRONG_STATE', `${email} has no active SecuPass`);
      // Destroy first: the update takes the key row's lock, so a release racing this reset
      // either committed its wraps before (and they are deleted below) or sees the key destroyed.
      await em.nativeUpdate(SecuPassKeySchema, { id: key.id }, { privateKey: null, destroyedAt: now });
      const effects = await this.deliveries.onKeyDestroyed(em, account, key, by);
      await audit(em, { action: 'secupass.reset', actor: by, targetType: 'account', targetId: account.id, data: { email, fingerprint: key.fingerprint, ...effects } }, now);
      return { fingerprint: key.fingerprint, ...effects, accountId: account.id };
    });
    await scrubDeleted(this.deps.orm);
    this.deps.events.emit('secupass.reset', { accountId: result.accountId });
    return { fingerprint: result.fingerprint, accessLost: result.accessLost, unreleasable: result.unreleasable };
  }
}

/** The public view of a key row. */
export function keyView(k: SecuPassKey): KeyView {
  return {
    id: k.id,
    fingerprint: k.fingerprint,
    encryptionKeyId: k.encryptionKeyId,
    publicKey: k.publicKey,
    origin: k.origin,
    createdAt: k.createdAt.toISOString(),
    createdFrom: k.createdFrom ?? null,
  };
}
