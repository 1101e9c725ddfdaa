/**
 * AccountService: accounts and authentication — invitations and registration, login sessions,
 * password policy and password reset by e-mail (which keeps SecuPass data), API tokens with
 * scopes and expiry, admin account management.
 */
import { randomUUID } from 'node:crypto';
import { LockMode } from '@mikro-orm/core';
import {
  AccountSchema,
  AccountTokenSchema,
  ApiTokenSchema,
  DeliveryRecipientSchema,
  DeliverySchema,
  SessionSchema,
  SshKeySchema,
  type Account,
  type AccountTokenPurpose,
  type Role,
  ROLES,
} from '../store/entities.ts';
import { audit } from './audit.ts';
import type { DeliveryService } from './deliveries.ts';
import { actorOf, inTx, readEm, requireLogin, requireScope, ROLE_SCOPES, SCOPES, type Actor, type CoreDeps, type Em, type Principal, type Scope, type Via } from './context.ts';
import { fail } from './errors.ts';
import { publicLink } from './links.ts';
import { enqueueMail } from './outbox.ts';
import { burnVerification, hashPassword, verifyPassword } from './passwords.ts';
import { clearHits, countHit, currentCount, retryAfterSeconds } from './rate-limit.ts';
import { hashToken, looksLikeToken, newToken, safeEqual } from './tokens.ts';
import { checkPasswordPolicy, isUuid, normalizeEmail } from './validation.ts';

const DAY = 86_400_000;

/** Public view of an account. */
export interface AccountView {
  id: string;
  email: string;
  role: Role;
  state: string;
  owner: string | null;
  createdAt: string;
  registeredAt: string | null;
  secupassActive?: boolean;
}

/** Public view of an API token (never the token itself). */
export interface ApiTokenView {
  id: string;
  name: string;
  scopes: string[];
  createdAt: string;
  expiresAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** A protocol login to re-check (see AccountService.endedLogins). */
export interface LiveLogin {
  accountId: string;
  auth: Principal['auth'];
  /** When it logged in. */
  since: Date;
  /** The SSH key it logged in with (key logins). */
  keyId?: string | undefined;
}

/** Accounts, authentication, tokens. */
export class AccountService {
  private readonly basicCache = new Map<string, { accountId: string; passwordChangedAt: number; until: number }>();

  constructor(
    private readonly deps: CoreDeps,
    private readonly deliveries: DeliveryService,
  ) {}

  private now(): Date {
    return this.deps.clock.now();
  }

  private get cfg() {
    return this.deps.config.accounts;
  }

  private async hash(password: string): Promise<string> {
    return hashPassword(password, this.cfg.passwordHash);
  }

  /** Looks up an account by e-mail (normalized) or returns null. */
  async findByEmail(em: Em, email: string): Promise<Account | null> {
    return em.findOne(AccountSchema, { email });
  }

  /**
   * Creates an account (admin or server CLI). With a password it is active at once; without,
   * it is invited: an invitation mail with a single-use link goes out.
   */
  async createAccount(
    by: Actor,
    input: { email: unknown; role: unknown; owner?: unknown; password?: unknown },
  ): Promise<{ account: AccountView; invited: boolean }> {
    const email = normalizeEmail(input.email);
    if (typeof input.role !== 'string' || !(ROLES as readonly string[]).includes(input.role)) {
      throw fail('SEALDROP_E_VALIDATION', `role must be one of ${ROLES.join(', ')}`, { field: 'role' });
    }
    const role = input.role as Role;
    const password = input.password === undefined || input.password === null ? undefined : checkPasswordPolicy(input.password, { minLength: this.cfg.passwordMinLength, email });
    if (role === 'service' && input.owner === undefined) throw fail('SEALDROP_E_VALIDATION', 'a service account needs an owner (a member who releases its uploads)', { field: 'owner' });
    if (role !== 'service' && input.owner !== undefined && input.owner !== null) throw fail('SEALDROP_E_VALIDATION', 'only service accounts have an owner', { field: 'owner' });
    const ownerEmail = input.owner === undefined || input.owner === null ? undefined : normalizeEmail(input.owner, 'owner');
    const passwordHash = password ? await this.hash(password) : null;
    const now = this.now();
    const result = await inTx(this.deps, async (em) => {
      if (await this.findByEmail(em, email)) throw fail('SEALDROP_E_CONFLICT', `an account for ${email} exists already`, { field: 'email' });
      let ownerId: string | null = null;
      if (ownerEmail) {
        const owner = await this.findByEmail(em, ownerEmail);
        if (!owner || owner.state !== 'active' || !['member', 'admin'].includes(owner.role)) throw fail('SEALDROP_E_VALIDATION', `owner ${ownerEmail} must be an active member or admin`, { field: 'owner' });
        ownerId = owner.id;
      }
      const account = em.create(AccountSchema, {
        id: randomUUID(),
        email,
        role,
        state: passwordHash ? 'active' : 'invited',
        passwordHash,
        ownerId,
        createdAt: now,
        registeredAt: passwordHash ? now : null,
        passwordChangedAt: passwordHash ? now : null,
      });
      await audit(em, { action: 'account.created', actor: by, targetType: 'account', targetId: account.id, data: { email, role, owner: ownerEmail ?? null, invited: !passwordHash } }, now);
      if (!passwordHash) await this.issueInvitation(em, account, by, 0);
      return account;
    });
    return { account: this.view(result, undefined, await this.ownerEmails(result)), invited: !passwordHash };
  }

  /** Creates an invited guest account inside a delivery transaction (recipient without an account). */
  async inviteRecipient(em: Em, email: string, by: Actor): Promise<Account> {
    const now = this.now();
    const account = em.create(AccountSchema, {
      id: randomUUID(),
      email,
      role: 'guest',
      state: 'invited',
      passwordHash: null,
      ownerId: null,
      createdAt: now,
    });
    await audit(em, { action: 'account.invited', actor: by, targetType: 'account', targetId: account.id, data: { email } }, now);
    return account;
  }

  /** Creates an invitation token and queues the invitation mail (inside the caller's transaction). */
  async issueInvitation(em: Em, account: Account, by: Actor, deliveries: number): Promise<void> {
    const now = this.now();
    const token = newToken('invitation');
    const expiresAt = new Date(now.getTime() + this.cfg.invitationTtlHours * 3_600_000);
    em.create(AccountTokenSchema, { id: randomUUID(), accountId: account.id, purpose: 'invitation', tokenHash: hashToken(token), createdAt: now, expiresAt });
    enqueueMail(em, this.deps.kek, now, 'invitation', account.email, {
      link: publicLink(this.deps.config.server.publicBaseUrl, '/register', { token }),
      inviter: by.email,
      expiresAt: expiresAt.toISOString(),
      deliveries,
    });
    await audit(em, { action: 'invitation.sent', actor: by, targetType: 'account', targetId: account.id, data: { email: account.email, expiresAt: expiresAt.toISOString() } }, now);
  }

  /**
   * Sends a fresh invitation to an account that has not registered yet. Allowed for admins and
   * for senders of a delivery to that account. Earlier links stay valid until they expire.
   */
  async resendInvitation(p: Principal, emailInput: unknown): Promise<void> {
    const email = normalizeEmail(emailInput);
    await inTx(this.deps, async (em) => {
      const account = await this.findByEmail(em, email);
      const isAdmin = p.scopes.has('admin');
      if (!account) throw fail('SEALDROP_E_NOT_FOUND', `no invitation for ${email}`);
      if (!isAdmin) {
        const deliveries = await em.find(DeliverySchema, { $or: [{ senderId: p.accountId }, { ownerId: p.accountId }] }, { fields: ['id'] });
        const link = deliveries.length
          ? await em.count(DeliveryRecipientSchema, { accountId: account.id, deliveryId: { $in: deliveries.map((d) => d.id) } })
          : 0;
        if (link === 0) throw fail('SEALDROP_E_NOT_FOUND', `no invitation for ${email}`);
      }
      if (account.state !== 'invited') throw fail('SEALDROP_E_WRONG_STATE', `${email} has registered already`);
      const pending = await em.count(DeliveryRecipientSchema, { accountId: account.id, state: 'awaiting_registration' });
      await this.issueInvitation(em, account, actorOf(p), pending);
    });
  }

  /** Consumes a single-use token of `purpose`; throws SEALDROP_E_TOKEN_INVALID if unknown, used or expired. */
  private async consumeToken(em: Em, token: unknown, purpose: AccountTokenPurpose): Promise<Account> {
    const kind = purpose === 'invitation' ? 'invitation' : 'password_reset';
    if (!looksLikeToken(token, kind)) throw fail('SEALDROP_E_TOKEN_INVALID');
    const row = await em.findOne(AccountTokenSchema, { tokenHash: hashToken(token), purpose });
    const now = this.now();
    if (!row || row.usedAt || row.expiresAt.getTime() <= now.getTime()) throw fail('SEALDROP_E_TOKEN_INVALID');
    row.usedAt = now;
    const account = await em.findOneOrFail(AccountSchema, { id: row.accountId });
    if (account.state === 'disabled') throw fail('SEALDROP_E_ACCOUNT_DISABLED');
    return account;
  }

  /**
   * Registration from the invitation link: sets the login password, activates the account and
   * moves its waiting deliveries on (level 2 becomes available, level 3/4 awaits the SecuPass).
   */
  async register(input: { token: unknown; password: unknown }, ip: string | undefined): Promise<AccountView> {
    if (!looksLikeToken(input.token, 'invitation')) throw fail('SEALDROP_E_TOKEN_INVALID');
    const preview = await readEm(this.deps).findOne(AccountTokenSchema, { tokenHash: hashToken(input.token), purpose: 'invitation' });
    const previewAccount = preview ? await readEm(this.deps).findOne(AccountSchema, { id: preview.accountId }) : null;
    const password = checkPasswordPolicy(input.password, { minLength: this.cfg.passwordMinLength, email: previewAccount?.email });
    const passwordHash = await this.hash(password);
    const now = this.now();
    const account = await inTx(this.deps, async (em) => {
      const account = await this.consumeToken(em, input.token, 'invitation');
      if (account.state !== 'invited') throw fail('SEALDROP_E_TOKEN_INVALID', 'this account has registered already; log in instead');
      account.state = 'active';
      account.passwordHash = passwordHash;
      account.registeredAt = now;
      account.registeredFrom = ip ?? null;
      account.passwordChangedAt = now;
      await em.nativeUpdate(AccountTokenSchema, { accountId: account.id, purpose: 'invitation', usedAt: null }, { usedAt: now });
      const actor: Actor = { accountId: account.id, email: account.email, ip };
      await audit(em, { action: 'account.registered', actor, targetType: 'account', targetId: account.id, data: { ip: ip ?? null } }, now);
      await this.deliveries.onRegistered(em, account, actor);
      return account;
    });
    return this.view(account, undefined, await this.ownerEmails(account));
  }

  /** Logs in from the browser: like login(), but the session token (`sdu_`) belongs in an HttpOnly cookie. */
  async loginUi(input: { email: unknown; password: unknown }, ip: string | undefined): Promise<{ token: string; expiresAt: Date; account: AccountView }> {
    const { account } = await this.verifyCredentials(input, ip, 'ui');
    const token = newToken('ui');
    const now = this.now();
    const expiresAt = new Date(now.getTime() + this.cfg.sessionTtlMinutes * 60_000);
    await inTx(this.deps, async (em) => {
      em.create(SessionSchema, { id: randomUUID(), accountId: account.id, tokenHash: hashToken(token), kind: 'ui', createdAt: now, expiresAt, lastSeenAt: now, ip: ip ?? null });
      await audit(em, { action: 'session.created', actor: { accountId: account.id, email: account.email, ip }, targetType: 'account', targetId: account.id, data: { via: 'ui' } }, now);
    });
    return { token, expiresAt, account: this.view(account, undefined, await this.ownerEmails(account)) };
  }

  /** The principal of a browser session cookie, or null if it is unknown, expired or the account is not active. */
  async authenticateUi(token: unknown, ip: string | undefined): Promise<Principal | null> {
    if (!looksLikeToken(token, 'ui')) return null;
    const em = readEm(this.deps);
    const hash = hashToken(token);
    const session = await em.findOne(SessionSchema, { tokenHash: hash, kind: 'ui' });
    const now = this.now();
    if (!session || !safeEqual(session.tokenHash, hash) || session.expiresAt.getTime() <= now.getTime()) return null;
    const account = await em.findOne(AccountSchema, { id: session.accountId });
    if (!account || account.state !== 'active') return null;
    if (now.getTime() - session.lastSeenAt.getTime() > 60_000) await em.nativeUpdate(SessionSchema, { id: session.id }, { lastSeenAt: now });
    return this.principalOf(account, new Set(ROLE_SCOPES[account.role]), 'session', 'ui', ip);
  }

  /** Ends a browser session. */
  async logoutUi(token: unknown): Promise<void> {
    if (!looksLikeToken(token, 'ui')) return;
    await inTx(this.deps, (em) => em.nativeDelete(SessionSchema, { tokenHash: hashToken(token), kind: 'ui' }));
  }

  /** The CSRF token of a browser session: an HMAC of its token hash, so nothing is stored. */
  csrfToken(sessionToken: string): string {
    return this.deps.kek.mac('csrf', hashToken(sessionToken));
  }

  /** Constant-time check of a CSRF token presented with a form or a fetch() call. */
  checkCsrf(sessionToken: string, presented: unknown): boolean {
    return typeof presented === 'string' && safeEqual(this.csrfToken(sessionToken), presented);
  }

  /** Changes an account's role (admin). A service account keeps its owner; others have none. */
  async setRole(by: Actor, emailInput: unknown, roleInput: unknown): Promise<AccountView> {
    const email = normalizeEmail(emailInput);
    if (typeof roleInput !== 'string' || !(ROLES as readonly string[]).includes(roleInput)) throw fail('SEALDROP_E_VALIDATION', `role must be one of ${ROLES.join(', ')}`);
    const role = roleInput as Role;
    if (role === 'service') throw fail('SEALDROP_E_VALIDATION', 'service accounts are created as such, with an owner');
    const now = this.now();
    const account = await inTx(this.deps, async (em) => {
      const account = await this.findByEmail(em, email);
      if (!account) throw fail('SEALDROP_E_NOT_FOUND', `no account ${email}`);
      if (account.role === 'service') throw fail('SEALDROP_E_WRONG_STATE', 'a service account keeps its role');
      if (account.role === role) return account;
      if (account.role === 'admin') await this.keepAnAdmin(em, account, 'demoted');
      const from = account.role;
      account.role = role;
      await em.nativeDelete(SessionSchema, { accountId: account.id });
      await audit(em, { action: 'account.role', actor: by, targetType: 'account', targetId: account.id, data: { email, from, to: role } }, now);
      return account;
    });
    return this.view(account, undefined, await this.ownerEmails(account));
  }

  /** Logs in with e-mail and password; returns a session bearer token. Failures are counted per address. */
  async login(input: { email: unknown; password: unknown }, ip: string | undefined, via: Via): Promise<{ token: string; expiresAt: string; account: AccountView }> {
    const { account } = await this.verifyCredentials(input, ip, via);
    const token = newToken('session');
    const now = this.now();
    const expiresAt = new Date(now.getTime() + this.cfg.sessionTtlMinutes * 60_000);
    await inTx(this.deps, async (em) => {
      em.create(SessionSchema, { id: randomUUID(), accountId: account.id, tokenHash: hashToken(token), createdAt: now, expiresAt, lastSeenAt: now, ip: ip ?? null });
      await audit(em, { action: 'session.created', actor: { accountId: account.id, email: account.email, ip }, targetType: 'account', targetId: account.id, data: { via } }, now);
    });
    return { token, expiresAt: expiresAt.toISOString(), account: this.view(account, undefined, await this.ownerEmails(account)) };
  }

  /**
   * Checks e-mail and password (login, and protocols with password authentication such as
   * SFTP and WebDAV). Counts failures per address; too many lock the address for the window.
   */
  async verifyCredentials(input: { email: unknown; password: unknown }, ip: string | undefined, via: Via): Promise<{ account: Account; principal: Principal }> {
    if (typeof input.email !== 'string' || typeof input.password !== 'string' || input.password.length > 1024) throw fail('SEALDROP_E_LOGIN_FAILED');
    let email: string;
    try {
      email = normalizeEmail(input.email);
    } catch {
      throw fail('SEALDROP_E_LOGIN_FAILED');
    }
    const key = `login:${email}`;
    const em = readEm(this.deps);
    const now = this.now();
    if ((await currentCount(em, key, this.cfg.loginWindowSeconds, now)) >= this.cfg.loginMaxFailures) {
      const retry = await retryAfterSeconds(em, key, this.cfg.loginWindowSeconds, now);
      throw fail('SEALDROP_E_RATE_LIMITED', `too many failed logins for this address; try again in ${retry} s`, { retryAfter: retry });
    }
    const account = await this.findByEmail(em, email);
    const ok = account?.passwordHash ? await verifyPassword(account.passwordHash, input.password) : (await burnVerification(this.cfg.passwordHash, input.password), false);
    if (!account || !ok) {
      await inTx(this.deps, async (tem) => {
        await countHit(tem, key, this.cfg.loginWindowSeconds, now);
        await audit(tem, { action: 'login.failed', actor: { accountId: null, email, ip }, data: { via } }, now);
      });
      this.deps.events.emit('auth.failed', { reason: 'password', via });
      throw fail('SEALDROP_E_LOGIN_FAILED');
    }
    if (account.state === 'disabled') throw fail('SEALDROP_E_ACCOUNT_DISABLED');
    if (account.state !== 'active') throw fail('SEALDROP_E_LOGIN_FAILED');
    await inTx(this.deps, (tem) => clearHits(tem, key));
    return { account, principal: this.principalOf(account, new Set(ROLE_SCOPES[account.role]), 'password', via, ip) };
  }

  /**
   * HTTP Basic for WebDAV: the e-mail address with the password or an API token (of that
   * account). A client sends the password with every request, so a verified password is
   * remembered for five minutes under a MAC of the pair (the password itself is not kept); the
   * account is re-read each time, and a changed password or a disabled account ends it.
   */
  async verifyBasic(email: string, secret: string, ip: string | undefined, via: Via): Promise<Principal> {
    if (looksLikeToken(secret, 'api') || looksLikeToken(secret, 'session')) {
      const p = await this.authenticate(secret, via, ip);
      if (p.email !== email.trim().toLowerCase()) throw fail('SEALDROP_E_UNAUTHENTICATED', 'the token belongs to another account');
      return p;
    }
    const key = this.deps.kek.mac('auth-cache', `${email.trim().toLowerCase()}\u0000${secret}`);
    const now = Date.now();
    const hit = this.basicCache.get(key);
    if (hit && hit.until > now) {
      const account = await readEm(this.deps).findOne(AccountSchema, { id: hit.accountId });
      if (account && account.state === 'active' && (account.passwordChangedAt?.getTime() ?? 0) === hit.passwordChangedAt) {
        return this.principalOf(account, new Set(ROLE_SCOPES[account.role]), 'password', via, ip);
      }
      this.basicCache.delete(key);
    }
    const { account, principal } = await this.verifyCredentials({ email, password: secret }, ip, via);
    if (this.basicCache.size >= 10_000) this.basicCache.clear();
    this.basicCache.set(key, { accountId: account.id, passwordChangedAt: account.passwordChangedAt?.getTime() ?? 0, until: now + 5 * 60_000 });
    return principal;
  }

  /** A principal with the full scopes of an active account (protocol logins by key, and work the daemon does for an account). */
  async principalFor(accountId: string, auth: Principal['auth'], via: Via, ip?: string): Promise<Principal | null> {
    const account = await readEm(this.deps).findOne(AccountSchema, { id: accountId });
    if (!account || account.state !== 'active') return null;
    return this.principalOf(account, new Set(ROLE_SCOPES[account.role]), auth, via, ip);
  }

  private principalOf(account: Account, scopes: ReadonlySet<Scope>, auth: Principal['auth'], via: Via, ip: string | undefined): Principal {
    return { accountId: account.id, email: account.email, role: account.role, scopes, auth, via, ip };
  }

  /** Ends a session. */
  async logout(p: Principal, bearer: string): Promise<void> {
    await inTx(this.deps, async (em) => {
      await em.nativeDelete(SessionSchema, { tokenHash: hashToken(bearer), accountId: p.accountId });
      await audit(em, { action: 'session.ended', actor: actorOf(p), targetType: 'account', targetId: p.accountId }, this.now());
    });
  }

  /** Resolves a bearer token (session or API token) to a principal; SEALDROP_E_UNAUTHENTICATED otherwise. */
  async authenticate(bearer: unknown, via: Via, ip: string | undefined): Promise<Principal> {
    const em = readEm(this.deps);
    const now = this.now();
    const deny = () => {
      this.deps.events.emit('auth.failed', { reason: 'token', via });
      return fail('SEALDROP_E_UNAUTHENTICATED', 'the bearer token is unknown, expired or revoked');
    };
    if (looksLikeToken(bearer, 'session')) {
      const hash = hashToken(bearer);
      const session = await em.findOne(SessionSchema, { tokenHash: hash, kind: 'api' });
      if (!session || !safeEqual(session.tokenHash, hash) || session.expiresAt.getTime() <= now.getTime()) throw deny();
      const account = await em.findOne(AccountSchema, { id: session.accountId });
      if (!account || account.state !== 'active') throw deny();
      return this.principalOf(account, new Set(ROLE_SCOPES[account.role]), 'session', via, ip);
    }
    if (looksLikeToken(bearer, 'api')) {
      const hash = hashToken(bearer);
      const token = await em.findOne(ApiTokenSchema, { tokenHash: hash });
      if (!token || !safeEqual(token.tokenHash, hash) || token.revokedAt || token.expiresAt.getTime() <= now.getTime()) throw deny();
      const account = await em.findOne(AccountSchema, { id: token.accountId });
      if (!account || account.state !== 'active') throw deny();
      if (!token.lastUsedAt || now.getTime() - token.lastUsedAt.getTime() > 60_000) {
        await em.nativeUpdate(ApiTokenSchema, { id: token.id }, { lastUsedAt: now });
      }
      const allowed = new Set(ROLE_SCOPES[account.role]);
      const scopes = new Set(token.scopes.filter((s): s is Scope => allowed.has(s as Scope)));
      return this.principalOf(account, scopes, 'api_token', via, ip);
    }
    throw deny();
  }

  /** Starts a password reset: if the address has an active account, a single-use link is mailed. Never tells whether it has. */
  async requestPasswordReset(emailInput: unknown, ip: string | undefined): Promise<void> {
    let email: string;
    try {
      email = normalizeEmail(emailInput);
    } catch {
      return;
    }
    const now = this.now();
    await inTx(this.deps, async (em) => {
      const key = `reset:${email}`;
      if ((await countHit(em, key, 3600, now)) > 5) return;
      const account = await this.findByEmail(em, email);
      if (!account || account.state !== 'active' || account.role === 'service') return;
      const token = newToken('password_reset');
      const expiresAt = new Date(now.getTime() + this.cfg.passwordResetTtlMinutes * 60_000);
      em.create(AccountTokenSchema, { id: randomUUID(), accountId: account.id, purpose: 'password_reset', tokenHash: hashToken(token), createdAt: now, expiresAt });
      enqueueMail(em, this.deps.kek, now, 'password_reset', account.email, {
        link: publicLink(this.deps.config.server.publicBaseUrl, '/password-reset', { token }),
        expiresAt: expiresAt.toISOString(),
      });
      await audit(em, { action: 'password_reset.requested', actor: { accountId: null, email, ip }, targetType: 'account', targetId: account.id }, now);
    });
  }

  /** Completes a password reset: new password, every session ends. SecuPass keys and deliveries are untouched. */
  async completePasswordReset(input: { token: unknown; password: unknown }, ip: string | undefined): Promise<void> {
    if (!looksLikeToken(input.token, 'password_reset')) throw fail('SEALDROP_E_TOKEN_INVALID');
    const em0 = readEm(this.deps);
    const preview = await em0.findOne(AccountTokenSchema, { tokenHash: hashToken(input.token), purpose: 'password_reset' });
    const previewAccount = preview ? await em0.findOne(AccountSchema, { id: preview.accountId }) : null;
    const password = checkPasswordPolicy(input.password, { minLength: this.cfg.passwordMinLength, email: previewAccount?.email });
    const passwordHash = await this.hash(password);
    const now = this.now();
    await inTx(this.deps, async (em) => {
      const account = await this.consumeToken(em, input.token, 'password_reset');
      account.passwordHash = passwordHash;
      account.passwordChangedAt = now;
      await em.nativeDelete(SessionSchema, { accountId: account.id });
      await em.nativeUpdate(AccountTokenSchema, { accountId: account.id, purpose: 'password_reset', usedAt: null }, { usedAt: now });
      await clearHits(em, `login:${account.email}`);
      await audit(em, { action: 'password_reset.completed', actor: { accountId: account.id, email: account.email, ip }, targetType: 'account', targetId: account.id }, now);
    });
  }

  /**
   * Changes the login password with the current one, from a login session (not with an API
   * token). Wrong current passwords are counted per account (`accounts.loginMaxFailures` within
   * `loginWindowSeconds`, then SEALDROP_E_RATE_LIMITED): a session cannot guess the password
   * without limit, and strangers failing logins on the address do not block the change. The
   * account's other login sessions end (the caller's, given by `bearer`, stays).
   */
  async changePassword(p: Principal, input: { currentPassword: unknown; newPassword: unknown }, bearer?: string): Promise<void> {
    requireLogin(p, 'the password is changed');
    const em = readEm(this.deps);
    const account = await em.findOneOrFail(AccountSchema, { id: p.accountId });
    const key = `password-change:${account.id}`;
    const now0 = this.now();
    if ((await currentCount(em, key, this.cfg.loginWindowSeconds, now0)) >= this.cfg.loginMaxFailures) {
      const retry = await retryAfterSeconds(em, key, this.cfg.loginWindowSeconds, now0);
      throw fail('SEALDROP_E_RATE_LIMITED', `too many wrong current passwords; try again in ${retry} s`, { retryAfter: retry });
    }
    const ok = typeof input.currentPassword === 'string' && input.currentPassword.length <= 1024 && Boolean(account.passwordHash) && (await verifyPassword(account.passwordHash as string, input.currentPassword));
    if (!ok) {
      await inTx(this.deps, async (tem) => {
        await countHit(tem, key, this.cfg.loginWindowSeconds, now0);
        await audit(tem, { action: 'password.change_failed', actor: actorOf(p), targetType: 'account', targetId: account.id }, now0);
      });
      throw fail('SEALDROP_E_LOGIN_FAILED', 'the current password is wrong');
    }
    await inTx(this.deps, (tem) => clearHits(tem, key));
    const password = checkPasswordPolicy(input.newPassword, { minLength: this.cfg.passwordMinLength, email: account.email, field: 'newPassword' });
    const passwordHash = await this.hash(password);
    const now = this.now();
    await inTx(this.deps, async (tem) => {
      await tem.nativeUpdate(AccountSchema, { id: account.id }, { passwordHash, passwordChangedAt: now });
      await tem.nativeDelete(SessionSchema, { accountId: account.id, ...(bearer ? { tokenHash: { $ne: hashToken(bearer) } } : {}) });
      await audit(tem, { action: 'password.changed', actor: actorOf(p), targetType: 'account', targetId: account.id }, now);
    });
  }

  /** Creates an API token for the caller (from a login session only); the token is returned once. */
  async createApiToken(p: Principal, input: { name?: unknown; scopes?: unknown; expiresInDays?: unknown }): Promise<{ token: string; tokenInfo: ApiTokenView }> {
    requireLogin(p, 'API tokens are created');
    const name = input.name === undefined ? 'api token' : input.name;
    if (typeof name !== 'string' || name.trim().length === 0 || name.length > 100) throw fail('SEALDROP_E_VALIDATION', 'name must be 1-100 characters');
    if (!Array.isArray(input.scopes) || input.scopes.length === 0) throw fail('SEALDROP_E_VALIDATION', `scopes must be a non-empty list of ${SCOPES.join(', ')}`);
    const allowed = ROLE_SCOPES[p.role];
    const scopes = [...new Set(input.scopes)];
    for (const s of scopes) {
      if (typeof s !== 'string' || !(SCOPES as readonly string[]).includes(s)) throw fail('SEALDROP_E_VALIDATION', `unknown scope ${JSON.stringify(s)}; scopes are ${SCOPES.join(', ')}`);
      if (!(allowed as readonly string[]).includes(s)) throw fail('SEALDROP_E_FORBIDDEN', `a ${p.role} account cannot hold the "${s}" scope`);
    }
    const days = input.expiresInDays === undefined ? Math.min(90, this.cfg.apiTokenMaxDays) : input.expiresInDays;
    if (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > this.cfg.apiTokenMaxDays) {
      throw fail('SEALDROP_E_VALIDATION', `expiresInDays must be a whole number from 1 to ${this.cfg.apiTokenMaxDays}`);
    }
    const token = newToken('api');
    const now = this.now();
    const row = await inTx(this.deps, async (em) => {
      const row = em.create(ApiTokenSchema, {
        id: randomUUID(),
        accountId: p.accountId,
        name: name.trim(),
        tokenHash: hashToken(token),
        scopes: scopes as string[],
        createdAt: now,
        expiresAt: new Date(now.getTime() + days * DAY),
      });
      await audit(em, { action: 'api_token.created', actor: actorOf(p), targetType: 'api_token', targetId: row.id, data: { name: row.name, scopes, expiresAt: row.expiresAt.toISOString() } }, now);
      return row;
    });
    return { token, tokenInfo: tokenView(row) };
  }

  /**
   * Retention: deletes expired login sessions, API tokens that expired or were revoked more than
   * `keepDays` ago, and expired or used e-mail tokens. Their audit records stay.
   */
  async purgeExpiredCredentials(keepDays = 30): Promise<{ sessions: number; apiTokens: number; accountTokens: number }> {
    const now = this.now();
    const cutoff = new Date(now.getTime() - keepDays * DAY);
    return inTx(this.deps, async (em) => {
      const sessions = await em.nativeDelete(SessionSchema, { expiresAt: { $lte: now } });
      const apiTokens = await em.nativeDelete(ApiTokenSchema, { $or: [{ expiresAt: { $lte: cutoff } }, { revokedAt: { $lte: cutoff } }] });
      const accountTokens = await em.nativeDelete(AccountTokenSchema, { $or: [{ expiresAt: { $lte: now } }, { usedAt: { $ne: null } }] });
      if (sessions + apiTokens + accountTokens > 0) {
        await audit(em, { action: 'retention.credentials_purged', actor: { accountId: null, email: 'system' }, data: { sessions, apiTokens, accountTokens } }, now);
      }
      return { sessions, apiTokens, accountTokens };
    });
  }

  /** The caller's API tokens. */
  async listApiTokens(p: Principal): Promise<ApiTokenView[]> {
    const rows = await readEm(this.deps).find(ApiTokenSchema, { accountId: p.accountId }, { orderBy: { createdAt: 'desc' } });
    return rows.map(tokenView);
  }

  /** Revokes one of the caller's API tokens. */
  async revokeApiToken(p: Principal, id: unknown): Promise<void> {
    await inTx(this.deps, async (em) => {
      const row = isUuid(id) ? await em.findOne(ApiTokenSchema, { id, accountId: p.accountId }) : null;
      if (!row) throw fail('SEALDROP_E_NOT_FOUND', 'no such API token');
      if (row.revokedAt) return;
      row.revokedAt = this.now();
      await audit(em, { action: 'api_token.revoked', actor: actorOf(p), targetType: 'api_token', targetId: row.id }, this.now());
    });
  }

  /** The caller's own account. */
  async me(p: Principal): Promise<AccountView> {
    const em = readEm(this.deps);
    const account = await em.findOneOrFail(AccountSchema, { id: p.accountId });
    return this.view(account, await this.hasActiveKey(em, account.id), await this.ownerEmails(account));
  }

  private async hasActiveKey(em: Em, accountId: string): Promise<boolean> {
    return (await em.count('SecuPassKey', { accountId, destroyedAt: null })) > 0;
  }

  /** Every account (admin). */
  async listAccounts(p: Principal): Promise<AccountView[]> {
    requireScope(p, 'admin');
    const em = readEm(this.deps);
    const rows = await em.find(AccountSchema, {}, { orderBy: { email: 'asc' } });
    const active = new Set((await em.find('SecuPassKey', { destroyedAt: null }, { fields: ['accountId'] as never })).map((k) => (k as { accountId: string }).accountId));
    const byId = new Map(rows.map((r) => [r.id, r.email]));
    return rows.map((r) => this.view(r, active.has(r.id), byId));
  }

  /** Disables (or re-enables) an account (admin): its sessions end and its tokens stop working. */
  async setDisabled(by: Actor, emailInput: unknown, disabled: boolean): Promise<AccountView> {
    const email = normalizeEmail(emailInput);
    const now = this.now();
    const account = await inTx(this.deps, async (em) => {
      const account = await this.findByEmail(em, email);
      if (!account) throw fail('SEALDROP_E_NOT_FOUND', `no account ${email}`);
      if (disabled) {
        if (account.state === 'disabled') return account;
        if (account.role === 'admin') await this.keepAnAdmin(em, account, 'disabled');
        account.state = 'disabled';
        account.disabledAt = now;
        await em.nativeDelete(SessionSchema, { accountId: account.id });
      } else {
        if (account.state !== 'disabled') return account;
        account.state = account.passwordHash ? 'active' : 'invited';
        account.disabledAt = null;
      }
      await audit(em, { action: disabled ? 'account.disabled' : 'account.enabled', actor: by, targetType: 'account', targetId: account.id, data: { email } }, now);
      return account;
    });
    return this.view(account, undefined, await this.ownerEmails(account));
  }

  /**
   * Which of these protocol logins no longer hold: the account disabled or gone, its password
   * changed since a password login, or the SSH key of a key login removed. Long protocol
   * sessions (SFTP) re-check with it: all of that is done by other processes (the CLI) or
   * instances as well.
   */
  async endedLogins(logins: readonly LiveLogin[]): Promise<boolean[]> {
    if (logins.length === 0) return [];
    const em = readEm(this.deps);
    const accountIds = [...new Set(logins.map((l) => l.accountId))];
    const accounts = new Map((await em.find(AccountSchema, { id: { $in: accountIds } }, { fields: ['id', 'state', 'passwordChangedAt'] })).map((a) => [a.id, a]));
    const keyIds = [...new Set(logins.flatMap((l) => (l.keyId ? [l.keyId] : [])))];
    const keys = new Set(keyIds.length ? (await em.find(SshKeySchema, { id: { $in: keyIds } }, { fields: ['id'] })).map((k) => k.id) : []);
    return logins.map((l) => {
      const a = accounts.get(l.accountId);
      if (!a || a.state !== 'active') return true;
      if (l.auth === 'password' && a.passwordChangedAt && a.passwordChangedAt.getTime() > l.since.getTime()) return true;
      return l.auth === 'ssh_key' && !(l.keyId && keys.has(l.keyId));
    });
  }

  /** Refuses to take away the last active admin (nobody could manage accounts in the UI or API then). */
  private async keepAnAdmin(em: Em, account: Account, what: string): Promise<void> {
    if (account.state !== 'active') return;
    // The active admins' rows are locked (PostgreSQL): two admins disabling each other at once
    // would otherwise each count the other and leave none.
    const admins = await em.find(AccountSchema, { role: 'admin', state: 'active' }, { lockMode: LockMode.PESSIMISTIC_WRITE, fields: ['id'] });
    if (!admins.some((a) => a.id !== account.id)) {
      throw fail('SEALDROP_E_WRONG_STATE', `the last active admin cannot be ${what}; make another active admin first (sealdrop account add --role admin --password-stdin)`);
    }
  }

  /** The owner's address of a service account, for view(). */
  private async ownerEmails(a: Account): Promise<Map<string, string> | undefined> {
    if (!a.ownerId) return undefined;
    const owner = await readEm(this.deps).findOne(AccountSchema, { id: a.ownerId }, { fields: ['email'] });
    return owner ? new Map([[a.ownerId, owner.email]]) : undefined;
  }

  /** The public view of an account row (a service account's owner by e-mail address). */
  view(a: Account, secupassActive?: boolean, emails?: Map<string, string>): AccountView {
    return {
      id: a.id,
      email: a.email,
      role: a.role,
      state: a.state,
      owner: a.ownerId ? (emails?.get(a.ownerId) ?? a.ownerId) : null,
      createdAt: a.createdAt.toISOString(),
      registeredAt: a.registeredAt ? a.registeredAt.toISOString() : null,
      ...(secupassActive === undefined ? {} : { secupassActive }),
    };
  }
}

function tokenView(t: { id: string; name: string; scopes: string[]; createdAt: Date; expiresAt: Date; lastUsedAt?: Date | null; revokedAt?: Date | null }): ApiTokenView {
  return {
    id: t.id,
    name: t.name,
    scopes: t.scopes,
    createdAt: t.createdAt.toISOString(),
    expiresAt: t.expiresAt.toISOString(),
    lastUsedAt: t.lastUsedAt ? t.lastUsedAt.toISOString() : null,
    revokedAt: t.revokedAt ? t.revokedAt.toISOString() : null,
  };
}
