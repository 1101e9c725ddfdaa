/**
 * WebDAV state that lives beside the tree: locks (RFC 4918 class 2) and dead properties. Both
 * are rows in the database, keyed by account and canonical tree path (each account sees its own
 * tree), so they survive restarts and hold across instances. The protocol adapter parses
 * headers and XML; the rules — which locks conflict, which cover a path, what a request must
 * present to change a locked resource — are here.
 */
import { randomUUID } from 'node:crypto';
import { DavLockSchema, DavPropertySchema, type DavLock } from '../store/entities.ts';
import { inTx, readEm, type CoreDeps, type Principal } from './context.ts';
import { fail } from './errors.ts';

/** A lock as the protocol shows it. */
export interface LockInfo {
  token: string;
  /** The locked resource (the lock root). */
  path: string;
  scope: 'exclusive' | 'shared';
  /** 0, or -1 for infinity. */
  depth: 0 | -1;
  owner: string | null;
  timeoutSeconds: number;
  expiresAt: Date;
}

/** A dead property: `{namespace}name` and its value as XML. */
export interface DeadProperty {
  name: string;
  value: string;
}

/** A PROPPATCH instruction. */
export type PropPatch = { op: 'set'; name: string; value: string } | { op: 'remove'; name: string };

/** Lock tokens are URIs of this scheme. */
export const LOCK_TOKEN_SCHEME = 'opaquelocktoken:';

const MAX_LOCKS_PER_ACCOUNT = 1000;
const MAX_PROPS_PER_RESOURCE = 200;
const MAX_PROP_NAME = 1024;
const MAX_PROP_VALUE = 64 * 1024;
const MAX_OWNER = 4096;

const within = (path: string, root: string): boolean => root === '/' || path === root || path.startsWith(`${root}/`);

function view(l: DavLock): LockInfo {
  return { token: `${LOCK_TOKEN_SCHEME}${l.token}`, path: l.path, scope: l.scope === 'shared' ? 'shared' : 'exclusive', depth: l.depth === 0 ? 0 : -1, owner: l.owner ?? null, timeoutSeconds: l.timeoutSeconds, expiresAt: l.expiresAt };
}

/** Locks and dead properties of the WebDAV view of the tree. */
export class DavService {
  constructor(private readonly deps: CoreDeps) {}

  private now(): Date {
    return this.deps.clock.now();
  }

  private async live(accountId: string): Promise<DavLock[]> {
    return readEm(this.deps).find(DavLockSchema, { accountId, expiresAt: { $gt: this.now() } });
  }

  /** Locks that cover `path`: on it, or on a folder above it with depth infinity. */
  async locksCovering(p: Principal, path: string): Promise<LockInfo[]> {
    return (await this.live(p.accountId)).filter((l) => l.path === path || (l.depth !== 0 && within(path, l.path))).map(view);
  }

  /** locksCovering for many paths at once (a PROPFIND listing). */
  async locksCoveringEach(p: Principal, paths: string[]): Promise<Map<string, LockInfo[]>> {
    const locks = await this.live(p.accountId);
    return new Map(paths.map((path) => [path, locks.filter((l) => l.path === path || (l.depth !== 0 && within(path, l.path))).map(view)]));
  }

  /** Locks on `path` or anything below it (what removing or moving a folder affects). */
  async locksWithin(p: Principal, path: string): Promise<LockInfo[]> {
    return (await this.live(p.accountId)).filter((l) => within(l.path, path)).map(view);
  }

  /**
   * Throws SEALDROP_E_LOCKED unless every lock that a change of `path` touches is presented:
   * the locks covering it and, with `subtree`, those below it. `presented` holds the lock tokens
   * the request's If header names for the resource.
   */
  async assertUnlocked(p: Principal, path: string, presented: ReadonlySet<string>, subtree = false): Promise<void> {
    const locks = await this.live(p.accountId);
    const touched = locks.filter((l) => l.path === path || (l.depth !== 0 && within(path, l.path)) || (subtree && within(l.path, path)));
    const missing = touched.filter((l) => !presented.has(`${LOCK_TOKEN_SCHEME}${l.token}`));
    if (missing.length) throw fail('SEALDROP_E_LOCKED', `${missing[0]?.path} is locked`, { lockRoot: missing[0]?.path });
  }

  /**
   * Takes a new lock. An exclusive lock conflicts with any other lock it would share a resource
   * with; a shared one with exclusive ones. Depth infinity takes in everything below.
   */
  async lock(p: Principal, path: string, input: { scope: 'exclusive' | 'shared'; depth: 0 | -1; owner: string | null; timeoutSeconds: number }): Promise<LockInfo> {
    if (input.owner !== null && input.owner.length > MAX_OWNER) throw fail('SEALDROP_E_TOO_LARGE', 'the lock owner is too long');
    const timeout = Math.max(1, Math.min(input.timeoutSeconds, this.deps.config.webdav.maxLockSeconds));
    return inTx(this.deps, async (em) => {
      const now = this.now();
      await em.nativeDelete(DavLockSchema, { accountId: p.accountId, expiresAt: { $lte: now } });
      const locks = await em.find(DavLockSchema, { accountId: p.accountId });
      if (locks.length >= MAX_LOCKS_PER_ACCOUNT) throw fail('SEALDROP_E_LIMIT', `at most ${MAX_LOCKS_PER_ACCOUNT} locks per account`);
      const overlapping = locks.filter((l) => l.path === path || (l.depth !== 0 && within(path, l.path)) || (input.depth !== 0 && within(l.path, path)));
      if (overlapping.some((l) => input.scope === 'exclusive' || l.scope === 'exclusive')) throw fail('SEALDROP_E_LOCKED', `${overlapping[0]?.path} is locked`, { lockRoot: overlapping[0]?.path });
      const row = em.create(DavLockSchema, {
        id: randomUUID(),
        accountId: p.accountId,
        path,
        token: randomUUID(),
        scope: input.scope,
        depth: input.depth,
        owner: input.owner,
        timeoutSeconds: timeout,
        createdAt: now,
        expiresAt: new Date(now.getTime() + timeout * 1000),
      });
      return view(row);
    });
  }

  /** Refreshes a lock named by `token` that covers `path`. */
  async refresh(p: Principal, path: string, token: string, timeoutSeconds: number): Promise<LockInfo> {
    const timeout = Math.max(1, Math.min(timeoutSeconds, this.deps.config.webdav.maxLockSeconds));
    return inTx(this.deps, async (em) => {
      const l = token.startsWith(LOCK_TOKEN_SCHEME) ? await em.findOne(DavLockSchema, { accountId: p.accountId, token: token.slice(LOCK_TOKEN_SCHEME.length) }) : null;
      const now = this.now();
      if (!l || l.expiresAt.getTime() <= now.getTime() || !(l.path === path || (l.depth !== 0 && within(path, l.path)))) {
        throw fail('SEALDROP_E_WRONG_STATE', 'no such lock on this resource', { lockTokenMismatch: true });
      }
      l.timeoutSeconds = timeout;
      l.expiresAt = new Date(now.getTime() + timeout * 1000);
      return view(l);
    });
  }

  /** Removes the lock `token`, which must cover `path`. */
  async unlock(p: Principal, path: string, token: string): Promise<void> {
    await inTx(this.deps, async (em) => {
      const l = token.startsWith(LOCK_TOKEN_SCHEME) ? await em.findOne(DavLockSchema, { accountId: p.accountId, token: token.slice(LOCK_TOKEN_SCHEME.length) }) : null;
      if (!l || l.expiresAt.getTime() <= this.now().getTime() || !(l.path === path || (l.depth !== 0 && within(path, l.path)))) {
        throw fail('SEALDROP_E_CONFLICT', 'the lock token does not name a lock on this resource', { lockTokenMismatch: true });
      }
      await em.nativeDelete(DavLockSchema, { id: l.id });
    });
  }

  /** Forgets the locks and properties on `path` and below (the resource is gone). */
  async forget(p: Principal, path: string): Promise<void> {
    await inTx(this.deps, async (em) => {
      const locks = (await em.find(DavLockSchema, { accountId: p.accountId })).filter((l) => within(l.path, path));
      if (locks.length) await em.nativeDelete(DavLockSchema, { id: { $in: locks.map((l) => l.id) } });
      const props = (await em.find(DavPropertySchema, { accountId: p.accountId })).filter((r) => within(r.path, path));
      if (props.length) await em.nativeDelete(DavPropertySchema, { id: { $in: props.map((r) => r.id) } });
    });
  }

  /** The dead properties of a resource. */
  async properties(p: Principal, path: string): Promise<DeadProperty[]> {
    const rows = await readEm(this.deps).find(DavPropertySchema, { accountId: p.accountId, path }, { orderBy: { name: 'asc' } });
    return rows.map((r) => ({ name: r.name, value: r.value }));
  }

  /** The dead properties of many resources at once (a PROPFIND listing). */
  async propertiesEach(p: Principal, paths: string[]): Promise<Map<string, DeadProperty[]>> {
    const out = new Map<string, DeadProperty[]>(paths.map((path) => [path, []]));
    if (paths.length === 0) return out;
    const rows = await readEm(this.deps).find(DavPropertySchema, { accountId: p.accountId, path: { $in: paths } }, { orderBy: { name: 'asc' } });
    for (const r of rows) out.get(r.path)?.push({ name: r.name, value: r.value });
    return out;
  }

  /** Applies PROPPATCH instructions in order, all or none. */
  async patch(p: Principal, path: string, ops: PropPatch[]): Promise<void> {
    for (const op of ops) {
      if (op.name.length > MAX_PROP_NAME) throw fail('SEALDROP_E_TOO_LARGE', 'a property name is too long');
      if (op.op === 'set' && op.value.length > MAX_PROP_VALUE) throw fail('SEALDROP_E_TOO_LARGE', `a property value is longer than ${MAX_PROP_VALUE} characters`);
    }
    await inTx(this.deps, async (em) => {
      const now = this.now();
      const rows = new Map((await em.find(DavPropertySchema, { accountId: p.accountId, path })).map((r) => [r.name, r]));
      for (const op of ops) {
        const row = rows.get(op.name);
        if (op.op === 'remove') {
          if (row) em.remove(row);
          rows.delete(op.name);
        } else if (row) {
          row.value = op.value;
          row.updatedAt = now;
        } else {
          if (rows.size >= MAX_PROPS_PER_RESOURCE) throw fail('SEALDROP_E_LIMIT', `at most ${MAX_PROPS_PER_RESOURCE} properties per resource`);
          rows.set(op.name, em.create(DavPropertySchema, { id: randomUUID(), accountId: p.accountId, path, name: op.name, value: op.value, updatedAt: now }));
        }
      }
    });
  }

  /** Moves (or copies) the properties of `from` and below to `to`; the target's are replaced. */
  async relocate(p: Principal, from: string, to: string, copy: boolean): Promise<void> {
    await inTx(this.deps, async (em) => {
      const all = await em.find(DavPropertySchema, { accountId: p.accountId });
      const old = all.filter((r) => within(r.path, to));
      if (old.length) await em.nativeDelete(DavPropertySchema, { id: { $in: old.map((r) => r.id) } });
      const now = this.now();
      for (const r of all.filter((x) => within(x.path, from) && !within(x.path, to))) {
        const path = `${to}${r.path.slice(from.length)}`;
        if (copy) em.create(DavPropertySchema, { id: randomUUID(), accountId: p.accountId, path, name: r.name, value: r.value, updatedAt: now });
        else r.path = path;
      }
      if (!copy) {
        const locks = (await em.find(DavLockSchema, { accountId: p.accountId })).filter((l) => within(l.path, from));
        if (locks.length) await em.nativeDelete(DavLockSchema, { id: { $in: locks.map((l) => l.id) } });
      }
    });
  }

  /** Removes expired locks of every account; returns how many. */
  async sweep(): Promise<number> {
    return inTx(this.deps, (em) => em.nativeDelete(DavLockSchema, { expiresAt: { $lte: this.now() } }));
  }
}
