/**
 * Schema drift: the SQL that would bring a migrated database to the schema the entities
 * declare. Empty on both dialects after all migrations (a test checks it); the migration tool
 * writes the next migration from it.
 */
import type { AbstractSqlConnection, AbstractSqlPlatform } from '@mikro-orm/knex';
import { DatabaseSchema } from '@mikro-orm/knex';
import { dialectOf, type Orm } from './orm.ts';

/** Up and down SQL from the database to the entities ('' each when they agree). */
export interface SchemaDrift {
  up: string;
  down: string;
}

/**
 * Compares the database behind `orm` with the entities. On SQLite, two misreadings of
 * MikroORM 6.6.16's introspection are corrected first, or every diff would rebuild tables that
 * are fine: enum check constraints of more than two values come back as their first and last
 * value (fixed upstream, mikro-orm/mikro-orm#8139), and a boolean default written `0` or `1` is
 * not taken as `false` or `true`.
 */
export async function schemaDrift(orm: Orm): Promise<SchemaDrift> {
  const generator = orm.getSchemaGenerator();
  const fromSchema = dialectOf(orm) === 'sqlite' ? await sqliteSchema(orm) : undefined;
  return generator.getUpdateSchemaMigrationSQL({ wrap: false, ...(fromSchema ? { fromSchema } : {}) });
}

async function sqliteSchema(orm: Orm): Promise<DatabaseSchema> {
  const connection = orm.em.getConnection() as AbstractSqlConnection;
  const platform = orm.em.getPlatform() as AbstractSqlPlatform;
  const schema = await DatabaseSchema.create(connection, platform, orm.config);
  const booleans = new Map<string, Set<string>>();
  for (const meta of Object.values(orm.getMetadata().getAll())) {
    const columns = Object.values(meta.properties).filter((p) => p.runtimeType === 'boolean').flatMap((p) => p.fieldNames ?? []);
    booleans.set(meta.tableName, new Set(columns));
  }
  for (const table of schema.getTables()) {
    const rows = await connection.execute<Array<{ sql: string }>>('select sql from sqlite_master where type = ? and name = ?', ['table', table.name]);
    const enums = enumChecks(rows[0]?.sql ?? '');
    for (const column of table.getColumns()) {
      const items = enums.get(column.name);
      if (items) column.enumItems = items;
      if (booleans.get(table.name)?.has(column.name) && (column.default === '0' || column.default === '1')) column.default = column.default === '1' ? 'true' : 'false';
    }
  }
  return schema;
}

/** The values of every `col text check (col in ('a', 'b', ...))` of a CREATE TABLE statement. */
export function enumChecks(createTable: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const check = /[`"]([^`"]+)[`"] text check \(\s*[`"]\1[`"] in \(((?:\s*'(?:[^']|'')*'\s*,?)+)\)\s*\)/gi;
  for (const m of createTable.matchAll(check)) {
    out.set(m[1] as string, [...(m[2] as string).matchAll(/'((?:[^']|'')*)'/g)].map((v) => (v[1] as string).replace(/''/g, "'")));
  }
  return out;
}
