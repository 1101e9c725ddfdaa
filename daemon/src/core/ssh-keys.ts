/**
 * SshKeyService: public keys that authenticate accounts over SFTP. Keys are parsed here (the
 * OpenSSH one-line format and the SSH wire blob) without any SSH library; the protocol adapter
 * verifies signatures and asks this service whose key it was.
 */
import { createHash, randomUUID } from 'node:crypto';
import { AccountSchema, SshKeySchema, type Account, type SshKey } from '../store/entities.ts';
import { audit } from './audit.ts';
import { actorOf, inTx, readEm, requireLogin, type Actor, type CoreDeps, type Principal } from './context.ts';
import { fail } from './errors.ts';
import { isUuid, normalizeEmail } from './validation.ts';

/** Key types accepted for login. */
const ACCEPTED = new Set(['ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com']);
const MIN_RSA_BITS = 2048;

/** A parsed public key. */
export interface ParsedSshKey {
  algorithm: string;
  blob: Buffer;
  comment: string | null;
  fingerprint: string;
}

/** Public view of an SSH key. */
export interface SshKeyView {
  id: string;
  fingerprint: string;
  algorithm: string;
  comment: string | null;
  createdAt: string;
  lastUsedAt: string | null;
}

/** OpenSSH's fingerprint of a key blob: `SHA256:` + unpadded base64 of its SHA-256. */
export function sshFingerprint(blob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function readString(buf: Buffer, offset: number): { value: Buffer; next: number } {
  if (offset + 4 > buf.length) throw new Error('truncated key');
  const len = buf.readUInt32BE(offset);
  if (offset + 4 + len > buf.length) throw new Error('truncated key');
  return { value: buf.subarray(offset + 4, offset + 4 + len), next: offset + 4 + len };
}

/** Parses one OpenSSH public key line (`type base64 [comment]`); throws SEALDROP_E_KEY_INVALID with the reason. */
export function parseSshPublicKey(line: unknown): ParsedSshKey {
  if (typeof line !== 'string' || line.length > 16 * 1024) throw fail('SEALDROP_E_KEY_INVALID', 'publicKey must be one OpenSSH public key line');
  const parts = line.trim().split(/\s+/);
  const [type, b64, ...rest] = parts;
  if (!type || !b64 || parts.length < 2) throw fail('SEALDROP_E_KEY_INVALID', 'expected "<type> <base64> [comment]" (the content of an id_*.pub file)');
  if (!ACCEPTED.has(type)) throw fail('SEALDROP_E_KEY_INVALID', `key type ${JSON.stringify(type.slice(0, 40))} is not accepted; use ssh-ed25519, ecdsa or ssh-rsa (≥ ${MIN_RSA_BITS} bits)`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw fail('SEALDROP_E_KEY_INVALID', 'the key data is not base64');
  const blob = Buffer.from(b64, 'base64');
  try {
    const first = readString(blob, 0);
    if (first.value.toString('latin1') !== type) throw new Error(`the key data says ${first.value.toString('latin1').slice(0, 40)}, the line says ${type}`);
    if (type === 'ssh-rsa') {
      const e = readString(blob, first.next);
      const n = readString(blob, e.next);
      let bytes = n.value.length;
      if (n.value[0] === 0) bytes--;
      if (bytes * 8 < MIN_RSA_BITS) throw new Error(`RSA keys need at least ${MIN_RSA_BITS} bits`);
    } else if (type === 'ssh-ed25519') {
      if (readString(blob, first.next).value.length !== 32) throw new Error('an ed25519 key has 32 bytes');
    } else {
      readString(blob, first.next);
    }
  } catch (err) {
    throw fail('SEALDROP_E_KEY_INVALID', `not a valid ${type} key: ${(err as Error).message}`);
  }
  const comment = rest.join(' ').slice(0, 200) || null;
  return { algorithm: type, blob, comment, fingerprint: sshFingerprint(blob) };
}

/** SSH keys of accounts. */
export class SshKeyService {
  constructor(private readonly deps: CoreDeps) {}

  /**
   * The caller adds a key to their own account, from a login session only: a key is a login of
   * its own, with the account's full rights over SFTP (an API token could otherwise make one).
   */
  async addOwn(p: Principal, publicKey: unknown): Promise<SshKeyView> {
    requireLogin(p, 'SSH keys are managed');
    return this.add(actorOf(p), { accountId: p.accountId }, publicKey);
  }

  /** The caller removes one of their own keys, from a login session only (see addOwn). */
  async removeOwn(p: Principal, idOrFingerprint: unknown): Promise<void> {
    requireLogin(p, 'SSH keys are managed');
    await this.remove(actorOf(p), idOrFingerprint, { accountId: p.accountId });
  }

  /** Adds a key to the caller's account, or (admin/CLI, with `email`) to another account. */
  async add(by: Actor, target: { accountId?: string; email?: unknown }, publicKey: unknown): Promise<SshKeyView> {
    const parsed = parseSshPublicKey(publicKey);
    const now = this.deps.clock.now();
    const row = await inTx(this.deps, async (em) => {
      let account: Account | null;
      if (target.email !== undefined) account = await em.findOne(AccountSchema, { email: normalizeEmail(target.email) });
      else account = target.accountId ? await em.findOne(AccountSchema, { id: target.accountId }) : null;
      if (!account) throw fail('SEALDROP_E_NOT_FOUND', 'no such account');
      if (await em.findOne(SshKeySchema, { fingerprint: parsed.fingerprint })) throw fail('SEALDROP_E_CONFLICT', `the key ${parsed.fingerprint} is registered already`);
      const row = em.create(SshKeySchema, {
        id: randomUUID(),
        accountId: account.id,
        fingerprint: parsed.fingerprint,
        algorithm: parsed.algorithm,
        publicKey: `${parsed.algorithm} ${parsed.blob.toString('base64')}`,
        comment: parsed.comment,
        createdAt: now,
      });
      await audit(em, { action: 'ssh_key.added', actor: by, targetType: 'account', targetId: account.id, data: { fingerprint: parsed.fingerprint, algorithm: parsed.algorithm } }, now);
      return row;
    });
    return view(row);
  }

  /** Keys of an account (by id or e-mail). */
  async list(target: { accountId?: string; email?: unknown }): Promise<SshKeyView[]> {
    const em = readEm(this.deps);
    let accountId = target.accountId;
    if (target.email !== undefined) {
      const account = await em.findOne(AccountSchema, { email: normalizeEmail(target.email) });
      if (!account) throw fail('SEALDROP_E_NOT_FOUND', 'no such account');
      accountId = account.id;
    }
    return (await em.find(SshKeySchema, { accountId }, { orderBy: { createdAt: 'asc' } })).map(view);
  }

  /** Removes a key by id or fingerprint; only the owner's own keys unless `admin`. */
  async remove(by: Actor, idOrFingerprint: unknown, owner: { accountId?: string; admin?: boolean }): Promise<void> {
    // An id is a UUID and a fingerprint SHA256:<base64>: anything else (a NUL, say) is no key.
    if (typeof idOrFingerprint !== 'string' || !(isUuid(idOrFingerprint) || /^SHA256:[A-Za-z0-9+/]{43}$/.test(idOrFingerprint))) throw fail('SEALDROP_E_NOT_FOUND', 'no such key');
    await inTx(this.deps, async (em) => {
      const row = await em.findOne(SshKeySchema, idOrFingerprint.startsWith('SHA256:') ? { fingerprint: idOrFingerprint } : { id: idOrFingerprint });
      if (!row || (!owner.admin && row.accountId !== owner.accountId)) throw fail('SEALDROP_E_NOT_FOUND', 'no such key');
      await em.nativeDelete(SshKeySchema, { id: row.id });
      await audit(em, { action: 'ssh_key.removed', actor: by, targetType: 'account', targetId: row.accountId, data: { fingerprint: row.fingerprint } }, this.deps.clock.now());
    });
  }

  /** The active account a key blob belongs to (and the stored key), or null. */
  async accountForKey(blob: Uint8Array): Promise<{ account: Account; key: SshKey } | null> {
    const em = readEm(this.deps);
    const key = await em.findOne(SshKeySchema, { fingerprint: sshFingerprint(blob) });
    if (!key) return null;
    const account = await em.findOne(AccountSchema, { id: key.accountId });
    if (!account || account.state !== 'active') return null;
    return { account, key };
  }

  /** Records that a key was used to log in. */
  async touch(keyId: string): Promise<void> {
    await inTx(this.deps, (em) => em.nativeUpdate(SshKeySchema, { id: keyId }, { lastUsedAt: this.deps.clock.now() }));
  }
}

function view(k: SshKey): SshKeyView {
  return { id: k.id, fingerprint: k.fingerprint, algorithm: k.algorithm, comment: k.comment ?? null, createdAt: k.createdAt.toISOString(), lastUsedAt: k.lastUsedAt ? k.lastUsedAt.toISOString() : null };
}

/** Principal-friendly wrapper: the caller manages its own keys. */
export function ownKeys(p: Principal): { accountId: string } {
  return { accountId: p.accountId };
}
