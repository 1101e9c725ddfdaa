import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/postgres.ts';
import { AccountSchema, DeliveryFileSchema, DeliverySchema, NotificationSchema } from './entities.ts';
import { MIGRATIONS } from './migrate.ts';
import { MIGRATION_NAMES } from './migrations/names.ts';
import { DIALECTS, dialectOf, openStore, pendingMigrations, scrubDeleted, type Dialect, type StoreOptions } from './orm.ts';
import { enumChecks, schemaDrift } from './schema-drift.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-orm-'));
const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const db of databases) await db.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** Options for an empty database of `dialect`. */
async function emptyStore(dialect: Dialect): Promise<StoreOptions> {
  if (dialect === 'sqlite') return { driver: 'sqlite', sqlitePath: path.join(dir, `${randomUUID()}.sqlite`) };
  const db = await createTestDatabase();
  databases.push(db);
  return { driver: 'postgresql', url: db.url };
}

describe('store migrations', () => {
  it('exist under the same names in every dialect, the names the daemon checks without the migrator', () => {
    expect(MIGRATIONS.postgresql.map((m) => m.name)).toEqual(MIGRATIONS.sqlite.map((m) => m.name));
    expect(MIGRATIONS.sqlite.map((m) => m.name)).toEqual(MIGRATION_NAMES);
  });

  it('build every table and column the entities declare, with the SQLite settings on', async () => {
    const orm = await openStore({ driver: 'sqlite', sqlitePath: path.join(dir, 'db.sqlite'), migrate: true });
    try {
      expect(await pendingMigrations(orm)).toEqual([]);
      const conn = orm.em.getConnection();
      for (const meta of Object.values(orm.getMetadata().getAll())) {
        if (meta.virtual || meta.embeddable) continue;
        const columns = (await conn.execute<Array<{ name: string }>>(`pragma table_info(\`${meta.tableName}\`)`)).map((c) => c.name);
        expect(columns.length, `table ${meta.tableName}`).toBeGreaterThan(0);
        for (const prop of Object.values(meta.properties)) {
          for (const field of prop.fieldNames ?? []) expect(columns, `${meta.tableName}.${field}`).toContain(field);
        }
      }
      expect(await conn.execute('pragma journal_mode')).toEqual([{ journal_mode: 'wal' }]);
      expect(await conn.execute('pragma secure_delete')).toEqual([{ secure_delete: 1 }]);
      expect(await conn.execute('pragma foreign_keys')).toEqual([{ foreign_keys: 1 }]);
    } finally {
      await orm.close();
    }
  });

  it('reads every value of an enum check constraint (SQLite introspection fix)', () => {
    const sql = "create table `t` (`a` text check (`a` in ('x', 'y', 'z')) not null, `b` text check (`b` in ('it''s', 'b,c')) null)";
    expect([...enumChecks(sql)]).toEqual([
      ['a', ['x', 'y', 'z']],
      ['b', ["it's", 'b,c']],
    ]);
  });

  it('talks TLS to PostgreSQL as configured: required, verified against a CA file, refused with the wrong CA', async () => {
    const { url } = (await emptyStore('postgresql')) as { url: string };
    const sslOf = async (tls: NonNullable<Extract<StoreOptions, { driver: 'postgresql' }>['tls']>) => {
      const orm = await openStore({ driver: 'postgresql', url, tls });
      try {
        const rows = await orm.em.getConnection().execute<Array<{ ssl: boolean }>>('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
        return rows[0]?.ssl;
      } finally {
        await orm.close();
      }
    };
    const caFile = inject('postgresCaFile');
    expect(await sslOf({ mode: 'disable' })).toBe(false);
    expect(await sslOf({ mode: 'require' })).toBe(true);
    expect(await sslOf({ mode: 'verify-ca', caFile })).toBe(true);
    expect(await sslOf({ mode: 'verify-full', caFile })).toBe(true);
    // Another self-signed certificate as the CA: the server's is not trusted.
    const wrong = path.join(dir, 'wrong-ca.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dir, 'wrong.key'), '-out', wrong, '-days', '1', '-subj', '/CN=not the server', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    await expect(sslOf({ mode: 'verify-full', caFile: wrong })).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    // Without a CA file, verification uses the system's CAs, which do not know the test cluster.
    await expect(sslOf({ mode: 'verify-full' })).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    await expect(sslOf({ mode: 'verify-full', caFile: path.join(dir, 'missing.pem') })).rejects.toThrow(/database\.tls\.caFile: cannot read .*missing\.pem: ENOENT/);
  });

  it('are applied in a worker thread: the opening thread never loads the migrator', () => {
    // A process of its own: this test file loads the migrator itself (MIGRATIONS).
    const script = [
      "import { createRequire } from 'node:module';",
      `const { openStore, pendingMigrations } = await import(${JSON.stringify(path.join(import.meta.dirname, 'orm.ts'))});`,
      `const orm = await openStore({ driver: 'sqlite', sqlitePath: ${JSON.stringify(path.join(dir, 'isolated.sqlite'))}, migrate: true });`,
      'const pending = await pendingMigrations(orm);',
      'await orm.close();',
      // Modules only: MikroORM reads the package.json of each of its packages it finds.
      'const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => /(@mikro-orm[\\/]migrations|umzug|@rushstack)[\\/].*\\.js$/.test(f));',
      'console.log(JSON.stringify({ pending, loaded }));',
    ].join('\n');
    const file = path.join(dir, 'isolated.mjs');
    writeFileSync(file, script);
    const out = execFileSync(process.execPath, ['--import', 'tsx/esm', file], { encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').pop() as string)).toEqual({ pending: [], loaded: [] });
  });

  it('report a migration that fails in the worker as an error of the caller', async () => {
    const { migrateIsolated } = await import('./orm.ts');
    // A port nothing listens on: the worker cannot connect, and says so.
    await expect(migrateIsolated({ driver: 'postgresql', url: 'postgres://sealdrop@127.0.0.1:1/none' })).rejects.toThrow(/^migration failed: .*ECONNREFUSED/);
  });

  it('migrate once when two instances start on one PostgreSQL database at the same moment', async () => {
    const options = await emptyStore('postgresql');
    const [a, b] = await Promise.all([openStore({ ...options, migrate: true }), openStore({ ...options, migrate: true })]);
    try {
      expect(await pendingMigrations(a)).toEqual([]);
      const rows = await a.em.getConnection().execute<Array<{ name: string }>>('select name from mikro_orm_migrations');
      expect(rows.map((r) => r.name)).toEqual(MIGRATIONS.postgresql.map((m) => m.name));
    } finally {
      await a.close();
      await b.close();
    }
  });

  describe.each(DIALECTS)('%s', (dialect) => {
    it('reach exactly the schema of the entities from an empty database', async () => {
      const orm = await openStore({ ...(await emptyStore(dialect)), migrate: true });
      try {
        expect(dialectOf(orm)).toBe(dialect);
        expect(await pendingMigrations(orm)).toEqual([]);
        // A migration written for one dialect only (or none) shows up here.
        expect((await schemaDrift(orm)).up.trim()).toBe('');
      } finally {
        await orm.close();
      }
    });

    it('round-trips every column type: uuid, bigint beyond 32 bits, blob, boolean, json, datetime in ms', async () => {
      const orm = await openStore({ ...(await emptyStore(dialect)), migrate: true });
      try {
        const em = orm.em.fork();
        const at = new Date('2026-11-29T12:34:56.789Z');
        const account = em.create(AccountSchema, { id: randomUUID(), email: 'a@example.org', role: 'member', state: 'active', createdAt: at });
        const delivery = em.create(DeliverySchema, { id: randomUUID(), senderId: account.id, ownerId: account.id, subject: 's', level: 2, state: 'open', hasMessage: true, deliveryKey: Buffer.from([0, 1, 255]), origin: 'api', createdAt: at, expiresAt: at, expiresInDays: 1 });
        em.create(DeliveryFileSchema, { id: randomUUID(), deliveryId: delivery.id, kind: 'file', name: 'big', size: 5 * 2 ** 32 + 7, blobSize: 3, temp: true, createdAt: at });
        em.create(NotificationSchema, { id: randomUUID(), accountId: account.id, kind: 'k', data: { n: 1, list: ['x'] }, createdAt: at });
        await em.flush();
        const read = orm.em.fork();
        const d = await read.findOneOrFail(DeliverySchema, { id: delivery.id });
        expect([d.hasMessage, Buffer.from(d.deliveryKey as Uint8Array).toString('hex'), d.createdAt.toISOString()]).toEqual([true, '0001ff', at.toISOString()]);
        const f = await read.findOneOrFail(DeliveryFileSchema, { deliveryId: delivery.id });
        expect([f.size, f.temp]).toEqual([5 * 2 ** 32 + 7, true]);
        expect(await read.count(DeliveryFileSchema, { temp: true, createdAt: { $lte: at } })).toBe(1);
        expect((await read.findOneOrFail(NotificationSchema, { accountId: account.id })).data).toEqual({ n: 1, list: ['x'] });
        await scrubDeleted(orm);
      } finally {
        await orm.close();
      }
    });
  });
});
