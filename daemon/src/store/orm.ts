/**
 * Opening the store: MikroORM on SQLite (embedded default), migrations from an explicit list
 * (one folder per dialect), and the SQLite settings the security model needs.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { MikroORM, type Options } from '@mikro-orm/better-sqlite';
import { Migrator } from '@mikro-orm/migrations';
import { ALL_ENTITIES } from './entities.ts';
import { SQLITE_MIGRATIONS } from './migrations/sqlite/index.ts';

/** The ORM handle the daemon uses. */
export type Orm = MikroORM;

/** Options of openStore. */
export interface StoreOptions {
  sqlitePath: string;
  /** Run pending migrations now (the daemon's default; `sealdrop migrate` does it explicitly). */
  migrate?: boolean;
}

interface SqliteHandle {
  pragma(sql: string): unknown;
}

/**
 * The ORM configuration. `secure_delete` overwrites deleted content (destroyed keys and wraps
 * leave no readable copy in the file), WAL gives concurrent readers, foreign keys are enforced.
 */
export function ormConfig(sqlitePath: string): Options {
  return {
    dbName: sqlitePath,
    entities: ALL_ENTITIES,
    extensions: [Migrator],
    debug: false,
    allowGlobalContext: false,
    forceUtcTimezone: true,
    discovery: { warnWhenNoEntities: true },
    migrations: {
      migrationsList: SQLITE_MIGRATIONS,
      tableName: 'mikro_orm_migrations',
      transactional: true,
      allOrNothing: true,
      silent: true,
    },
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

/** Opens the store, creating the database folder, and applies pending migrations if asked. */
export async function openStore(options: StoreOptions): Promise<Orm> {
  mkdirSync(path.dirname(options.sqlitePath), { recursive: true, mode: 0o700 });
  const orm = await MikroORM.init(ormConfig(options.sqlitePath));
  if (options.migrate) await migrate(orm);
  return orm;
}

/** Applies pending migrations; returns the names applied. */
export async function migrate(orm: Orm): Promise<string[]> {
  const applied = await orm.getMigrator().up();
  return applied.map((m) => m.name);
}

/** Names of migrations not applied yet. */
export async function pendingMigrations(orm: Orm): Promise<string[]> {
  const pending = await orm.getMigrator().getPendingMigrations();
  return pending.map((m) => m.name);
}

/**
 * Makes deleted content unrecoverable from the live database files: copies WAL frames back
 * into the main file and truncates the WAL (secure_delete already zeroes freed pages).
 */
export async function scrubDeleted(orm: Orm): Promise<void> {
  await orm.em.getConnection().execute('pragma wal_checkpoint(TRUNCATE)');
}
