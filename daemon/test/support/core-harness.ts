/**
 * An in-process core for tests: a fresh database (SQLite in a temp directory, or a PostgreSQL
 * database of the test cluster) and blob folder, cheap argon2 settings, a settable clock, and a
 * blob store that counts reads.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import pino from 'pino';
import { loadConfig, type ResolvedPaths } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import type { Principal } from '../../src/core/context.ts';
import { CoreEvents } from '../../src/core/events.ts';
import { Core } from '../../src/core/index.ts';
import { Kek } from '../../src/crypto/at-rest.ts';
import type { EncryptPool } from '../../src/crypto/encrypt-pool.ts';
import type { BlobStore } from '../../src/store/blob-store.ts';
import { OutboxMessageSchema } from '../../src/store/entities.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { migrate } from '../../src/store/migrate.ts';
import { openStore, storeOptionsFrom, type Dialect, type Orm } from '../../src/store/orm.ts';
import { createTestDatabase, postgresEnv } from './postgres.ts';

/** Environment overrides that make argon2 cheap (tests that are not about argon2). */
export const CHEAP_ARGON2_ENV: Record<string, string> = {
  SEALDROP_CRYPTO__S2K_ARGON2__PASSES: '1',
  SEALDROP_CRYPTO__S2K_ARGON2__PARALLELISM: '1',
  SEALDROP_CRYPTO__S2K_ARGON2__MEMORY_EXPONENT: '10',
  SEALDROP_ACCOUNTS__PASSWORD_HASH__MEMORY_COST: '256',
  SEALDROP_ACCOUNTS__PASSWORD_HASH__TIME_COST: '1',
};

/** A BlobStore wrapper counting get() calls (to prove a release opens no blob). */
export class CountingBlobStore implements BlobStore {
  gets = 0;
  constructor(readonly inner: BlobStore) {}
  put(...a: Parameters<BlobStore['put']>) {
    return this.inner.put(...a);
  }
  async get(...a: Parameters<BlobStore['get']>): Promise<Readable> {
    this.gets++;
    return this.inner.get(...a);
  }
  stat(key: string) {
    return this.inner.stat(key);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  list() {
    return this.inner.list();
  }
  check() {
    return this.inner.check();
  }
  cleanup(ms: number) {
    return this.inner.cleanup(ms);
  }
}

/** A test core and its parts. */
export interface Harness {
  core: Core;
  orm: Orm;
  blobs: CountingBlobStore;
  kek: Kek;
  config: Config;
  paths: ResolvedPaths;
  dialect: Dialect;
  dir: string;
  clock: { offsetMs: number; now(): Date };
  /** Decrypted params of queued mails to `to` (newest last). */
  mails(to?: string): Promise<Array<{ template: string; to: string; params: Record<string, unknown> }>>;
  close(): Promise<void>;
}

/**
 * Creates a harness on `dialect` (PostgreSQL: a new database of the test cluster); `env` adds
 * configuration overrides; `encryptPool` encrypts uploads in worker threads as the daemon does
 * (the caller closes it).
 */
export async function createHarness(env: Record<string, string> = {}, dialect: Dialect = 'sqlite', encryptPool?: EncryptPool): Promise<Harness> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-core-'));
  const db = dialect === 'postgresql' ? await createTestDatabase() : undefined;
  const loaded = loadConfig({ env: { ...CHEAP_ARGON2_ENV, SEALDROP_STORAGE__DATA_DIR: path.join(dir, 'data'), ...(db ? postgresEnv(db.url) : {}), ...env }, cwd: dir });
  const { config, paths } = loaded;
  // Migrated in this thread: the daemon's worker (openStore's `migrate`) takes ~1 s more from
  // the sources, per test; orm.test.ts and the end-to-end tests go that way.
  const orm = await openStore(storeOptionsFrom(loaded));
  await migrate(orm);
  const fsStore = new FsBlobStore(paths.blobDir);
  await fsStore.init();
  const blobs = new CountingBlobStore(fsStore);
  const kek = Kek.fromBytes(randomBytes(32));
  const clock = {
    offsetMs: 0,
    now() {
      return new Date(Date.now() + this.offsetMs);
    },
  };
  const core = new Core({ orm, config, blobs, kek, log: pino({ level: 'silent' }), clock, events: new CoreEvents(), encryptPool });
  return {
    core,
    orm,
    blobs,
    kek,
    config,
    paths,
    dialect,
    dir,
    clock,
    async mails(to?: string) {
      const rows = await orm.em.fork().find(OutboxMessageSchema, to ? { to } : {}, { orderBy: { createdAt: 'asc' } });
      return rows
        .filter((r) => r.payload)
        .map((r) => ({ template: r.template, to: r.to, params: JSON.parse(kek.open('outbox', r.payload as Uint8Array, r.id).toString('utf8')) as Record<string, unknown> }));
    },
    async close() {
      await orm.close();
      await db?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A principal as the HTTP adapter would build it from a login session. */
export async function sessionPrincipal(h: Harness, email: string, password: string): Promise<Principal> {
  const { token } = await h.core.accounts.login({ email, password }, '127.0.0.1', 'api');
  return h.core.accounts.authenticate(token, 'api', '127.0.0.1');
}
