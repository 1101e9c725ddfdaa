/**
 * Applying migrations: the migrator and the migration classes of each dialect. Loaded by the
 * migration worker (store/migrate-worker.ts), the migration tool and tests, never by the
 * daemon's main thread (store/orm.ts `migrateIsolated`).
 */
import type { MigrationObject } from '@mikro-orm/core';
import { Migrator } from '@mikro-orm/migrations';
import { POSTGRESQL_MIGRATIONS } from './migrations/postgresql/index.ts';
import { SQLITE_MIGRATIONS } from './migrations/sqlite/index.ts';
import { dialectOf, type Dialect, type Orm } from './orm.ts';

/** The migrations of each dialect, oldest first (the names of migrations/names.ts). */
export const MIGRATIONS: Record<Dialect, MigrationObject[]> = { sqlite: SQLITE_MIGRATIONS, postgresql: POSTGRESQL_MIGRATIONS };

const prepared = new WeakSet<Orm>();

/** The migrator of an open store, with its dialect's list, set up on first use. */
function migratorOf(orm: Orm): Migrator {
  if (!prepared.has(orm)) {
    orm.config.set('migrations', { ...orm.config.get('migrations'), migrationsList: MIGRATIONS[dialectOf(orm)] });
    Migrator.register(orm);
    prepared.add(orm);
  }
  return orm.getMigrator() as Migrator;
}

/** Applies pending migrations in this thread; returns the names applied. */
export async function migrate(orm: Orm): Promise<string[]> {
  const migrator = migratorOf(orm);
  if (dialectOf(orm) !== 'postgresql') return (await migrator.up()).map((m) => m.name);
  // Several instances may start at once: a transaction-scoped advisory lock lets one migrate
  // while the others wait, then find nothing pending.
  const knex = (orm.em.getConnection() as unknown as { getKnex(): { transaction<T>(fn: (trx: { raw(sql: string, args: unknown[]): Promise<unknown> }) => Promise<T>): Promise<T> } }).getKnex();
  return knex.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [MIGRATION_LOCK_ID]);
    return (await migrator.up()).map((m) => m.name);
  });
}

/** Advisory lock key for migrations ("sealdrop" in ASCII, as a bigint). */
const MIGRATION_LOCK_ID = '8315159405179072368';
