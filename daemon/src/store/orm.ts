/**
 * Opening the store: MikroORM on SQLite (embedded default) or PostgreSQL, chosen by the
 * configuration; whether migrations are pending, and applying them in a worker thread
 * (store/migrate.ts holds the migrator and the lists); and the database settings the security
 * model needs. The core sees only the knex `EntityManager`, the same on both.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { BetterSqliteDriver, MikroORM as SqliteMikroORM, type Options as SqliteOptions } from '@mikro-orm/better-sqlite';
import type { MikroORM } from '@mikro-orm/core';
import type { AbstractSqlDriver, EntityManager } from '@mikro-orm/knex';
// The PostgreSQL driver (with knex's pg client) is loaded only when configured: ~4 MB of
// memory that a SQLite deployment never needs.
import type { Options as PostgreSqlOptions } from '@mikro-orm/postgresql';
import { databaseTls, type DatabaseTlsMode, type LoadedConfig } from '../config/load.ts';
import { runOnce } from '../util/one-shot-worker.ts';
import { workerEntry } from '../util/worker-entry.ts';
import { ALL_ENTITIES } from './entities.ts';
import type { MigrateResult } from './migrate-worker.ts';
import { MIGRATION_NAMES, MIGRATIONS_TABLE } from './migrations/names.ts';

/** The ORM handle the daemon uses, on either dialect. */
export type Orm = MikroORM<AbstractSqlDriver, EntityManager>;

/** The database dialects (`database.driver`). */
export type Dialect = 'sqlite' | 'postgresql';

/** Every dialect, SQLite first. */
export const DIALECTS: readonly Dialect[] = ['sqlite', 'postgresql'];

interface CommonStoreOptions {
  /** Apply pending migrations now (migrateIsolated). */
  migrate?: boolean;
}

/** Options of openStore for SQLite: one database file. */
export interface SqliteStoreOptions extends CommonStoreOptions {
  driver: 'sqlite';
  sqlitePath: string;
}

/** Options of openStore for PostgreSQL: a server database. */
export interface PostgreSqlStoreOptions extends CommonStoreOptions {
  driver: 'postgresql';
  /** `postgres://user@host:port/database`. */
  url: string;
  /** Wins over a password inside `url`. */
  password?: string | undefined;
  /** Most pooled connections (default 10). */
  poolMax?: number | undefined;
  /** TLS to the server (default: none). `caFile`: PEM CA certificates (default: the system's). */
  tls?: { mode: DatabaseTlsMode; caFile?: string | undefined } | undefined;
}

/** Options of openStore. */
export type StoreOptions = SqliteStoreOptions | PostgreSqlStoreOptions;

/** The store options of a loaded configuration (`database` section and resolved paths), without `migrate`. */
export function storeOptionsFrom({ config, paths }: Pick<LoadedConfig, 'config' | 'paths'>): StoreOptions {
  const db = config.database;
  if (db.driver === 'postgresql') {
    // loadConfig refuses postgresql without a url; this guards hand-built configurations.
    if (!db.url) throw new Error('database.url: required when database.driver is postgresql');
    return { driver: 'postgresql', url: db.url, password: db.password, poolMax: db.poolMax, tls: { mode: databaseTls(db).mode, caFile: paths.databaseCaFile } };
  }
  return { driver: 'sqlite', sqlitePath: paths.sqlitePath };
}

interface SqliteHandle {
  pragma(sql: string): unknown;
}

function commonConfig() {
  return {
    entities: ALL_ENTITIES,
    debug: false,
    allowGlobalContext: false,
    forceUtcTimezone: true,
    discovery: { warnWhenNoEntities: true },
    migrations: {
      tableName: MIGRATIONS_TABLE,
      transactional: true,
      allOrNothing: true,
      silent: true,
    },
  };
}

/**
 * SQLite: `secure_delete` overwrites deleted content (destroyed keys and wraps leave no readable
 * copy in the file), WAL gives concurrent readers, foreign keys are enforced. One connection.
 */
function sqliteConfig(options: SqliteStoreOptions): SqliteOptions {
  return {
    ...commonConfig(),
    dbName: options.sqlitePath,
    pool: {
      min: 1,
      max: 1,
      afterCreate: (conn: SqliteHandle, done: (err: Error | null, conn: SqliteHandle) => void) => {
        try {
          conn.pragma('journal_mode = WAL');
          conn.pragma('secure_delete = ON');
          conn.pragma('foreign_keys = ON');
          conn.pragma('busy_timeout = 10000');
          conn.pragma('synchronous = FULL');
          done(null, conn);
        } catch (err) {
          done(err as Error, conn);
        }
      },
    },
  };
}

/** PostgreSQL: the URL taken apart (MikroORM would read a missing port as 0), a bounded pool, no database creation. */
function postgresqlConfig(options: PostgreSqlStoreOptions): PostgreSqlOptions {
  const url = new URL(options.url);
  const password = options.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
  return {
    ...commonConfig(),
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : 5432,
    ...(url.username ? { user: decodeURIComponent(url.username) } : {}),
    ...(password !== undefined ? { password } : {}),
    dbName: decodeURIComponent(url.pathname.slice(1)),
    ensureDatabase: false,
    pool: { min: 0, max: options.poolMax ?? 10 },
    ...(options.tls && options.tls.mode !== 'disable' ? { driverOptions: { connection: { ssl: postgresTls(options.tls) } } } : {}),
  };
}

/** node-postgres TLS options for a libpq-style mode. */
function postgresTls(tls: { mode: DatabaseTlsMode; caFile?: string | undefined }): ConnectionOptions {
  if (tls.mode === 'require') return { rejectUnauthorized: false };
  let ca: string | undefined;
  if (tls.caFile !== undefined) {
    try {
      ca = readFileSync(tls.caFile, 'utf8');
    } catch (err) {
      throw new Error(`database.tls.caFile: cannot read ${tls.caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return {
    rejectUnauthorized: true,
    ...(ca !== undefined ? { ca } : {}),
    // verify-ca: the chain only, whatever name the certificate carries.
    ...(tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
  };
}

/**
 * Starts MikroORM for `options` without touching the schema (store/migrate.ts adds the
 * migrator to an ORM that is to migrate).
 */
export async function initOrm(options: StoreOptions): Promise<Orm> {
  if (options.driver === 'postgresql') {
    const { MikroORM: PostgreSqlMikroORM } = await import('@mikro-orm/postgresql');
    return PostgreSqlMikroORM.init(postgresqlConfig(options));
  }
  return SqliteMikroORM.init(sqliteConfig(options));
}

/** Creates the folder of a SQLite database file (owner only). */
function ensureSqliteFolder(options: StoreOptions): void {
  if (options.driver === 'sqlite') mkdirSync(path.dirname(options.sqlitePath), { recursive: true, mode: 0o700 });
}

/**
 * Opens the store (creating the SQLite folder) and, if asked, applies pending migrations
 * (migrateIsolated: a worker thread that loads the migrator only when something is pending).
 */
export async function openStore(options: StoreOptions): Promise<Orm> {
  ensureSqliteFolder(options);
  const orm = await initOrm(options);
  try {
    if (options.migrate && (await pendingMigrations(orm)).length > 0) await migrateIsolated(options);
  } catch (err) {
    await orm.close();
    throw err;
  }
  return orm;
}

/** The dialect of an open store. */
export function dialectOf(orm: Orm): Dialect {
  return orm.em.getDriver() instanceof BetterSqliteDriver ? 'sqlite' : 'postgresql';
}

/**
 * Names of this build's migrations not applied yet, oldest first. Read from the migrations
 * table without the migrator (and without creating the table, which the migrator would).
 */
export async function pendingMigrations(orm: Orm): Promise<string[]> {
  const knex = orm.em.getConnection().getKnex();
  const applied = new Set<string>();
  if (await knex.schema.hasTable(MIGRATIONS_TABLE)) {
    const rows: Array<{ name: string }> = await knex.select('name').from(MIGRATIONS_TABLE);
    // MikroORM stores names without a .js/.ts extension.
    for (const { name } of rows) applied.add(name.replace(/\.(js|ts)$/, ''));
  }
  return MIGRATION_NAMES.filter((name) => !applied.has(name));
}

/**
 * Applies pending migrations in a worker thread with a store of its own, which it closes
 * before it ends; returns the names applied. The migrator (@mikro-orm/migrations with umzug,
 * @rushstack's command-line libraries, ajv: 22 packages, ~3 MB of heap) leaves with the thread,
 * so a daemon that migrated at start does not hold it for good.
 */
export async function migrateIsolated(options: StoreOptions): Promise<string[]> {
  ensureSqliteFolder(options);
  const result = await runOnce<MigrateResult>(workerEntry(import.meta.url, 'migrate-worker'), options, 'migration worker');
  if (!result.ok) throw new Error(`migration failed: ${result.message}`);
  return result.applied;
}

/** The tables that held destroyed key material (private keys, key wraps). */
const KEY_TABLES = ['secupass_key', 'key_wrap'];

/**
 * Makes deleted content as unrecoverable from the live database as the dialect allows.
 * SQLite: copies WAL frames back into the main file and truncates the WAL (secure_delete
 * already zeroes freed pages). PostgreSQL: VACUUM of the key tables, which frees the dead row
 * versions for reuse but does not zero them on disk (README "Keys and backups").
 */
export async function scrubDeleted(orm: Orm): Promise<void> {
  const conn = orm.em.getConnection();
  if (dialectOf(orm) === 'postgresql') await conn.execute(`vacuum ${KEY_TABLES.join(', ')}`);
  else await conn.execute('pragma wal_checkpoint(TRUNCATE)');
}
