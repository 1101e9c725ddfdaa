/**
 * What every core call gets: the Principal (who, which scopes, through which protocol, from
 * where) and the dependencies the services share.
 */
import type { EntityManager } from '@mikro-orm/knex';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Kek } from '../crypto/at-rest.ts';
import type { EncryptPool } from '../crypto/encrypt-pool.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { Role } from '../store/entities.ts';
import type { Orm } from '../store/orm.ts';
import { fail } from './errors.ts';
import type { CoreEvents } from './events.ts';

/** API token scopes. */
export const SCOPES = ['send', 'release', 'fetch', 'admin'] as const;
/** A scope: send (create and upload), release (bind deliveries to recipients), fetch (list and download), admin. */
export type Scope = (typeof SCOPES)[number];

/** The scopes each role may hold. */
export const ROLE_SCOPES: Record<Role, readonly Scope[]> = {
  admin: ['send', 'release', 'fetch', 'admin'],
  member: ['send', 'release', 'fetch'],
  service: ['send'],
  guest: ['fetch'],
};

/** Protocols a request can come through. */
export type Via = 'api' | 'sftp' | 'webdav' | 'ui' | 'cli' | 'system';

/** An authenticated caller. */
export interface Principal {
  accountId: string;
  email: string;
  role: Role;
  scopes: ReadonlySet<Scope>;
  /** How the caller authenticated: a login session, an API token, a password or SSH key (protocol login), the server's CLI, or the daemon itself. */
  auth: 'session' | 'api_token' | 'password' | 'ssh_key' | 'cli' | 'system';
  via: Via;
  ip?: string | undefined;
}

/** Who did something, for audit records (a principal, the CLI, or the daemon itself). */
export interface Actor {
  accountId: string | null;
  email: string | null;
  ip?: string | undefined;
}

/** The actor of a principal. */
export function actorOf(p: Principal | null | undefined): Actor {
  return p ? { accountId: p.accountId, email: p.email, ip: p.ip } : { accountId: null, email: 'system' };
}

/** Throws SEALDROP_E_SCOPE unless the principal holds `scope`. */
export function requireScope(p: Principal, scope: Scope): void {
  if (!p.scopes.has(scope)) throw fail('SEALDROP_E_SCOPE', `this needs the "${scope}" scope`);
}

/**
 * Throws SEALDROP_E_FORBIDDEN unless the caller logged in (a login session, or the server's
 * CLI): credentials — the password, SSH keys, API tokens, the SecuPass's protection — are not
 * changed with an API token, whatever its scopes. `what` says what, e.g. "SSH keys are managed".
 */
export function requireLogin(p: Principal, what: string): void {
  if (p.auth !== 'session' && p.auth !== 'cli') throw fail('SEALDROP_E_FORBIDDEN', `${what} from a login session, not with an API token`);
}

/** A wall clock (replaceable in tests). */
export interface Clock {
  now(): Date;
}

/** Dependencies shared by the core services. */
export interface CoreDeps {
  orm: Orm;
  config: Config;
  blobs: BlobStore;
  kek: Kek;
  log: Logger;
  clock: Clock;
  events: CoreEvents;
  /** Worker threads for SEIPDv1 encryption; without it uploads are encrypted on the main thread. */
  encryptPool?: EncryptPool | undefined;
}

/** The transactional entity manager type used throughout the core. */
export type Em = EntityManager;

/** Runs `fn` in one database transaction on a fresh entity manager. */
export async function inTx<T>(deps: Pick<CoreDeps, 'orm'>, fn: (em: Em) => Promise<T>): Promise<T> {
  return deps.orm.em.fork().transactional(fn);
}

/** A fresh entity manager for read-only work outside a transaction. */
export function readEm(deps: Pick<CoreDeps, 'orm'>): Em {
  return deps.orm.em.fork();
}
