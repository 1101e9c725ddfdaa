/**
 * Developer tool: writes the next migration of each dialect from the difference between the
 * entity definitions and the schema the existing migrations build on a scratch database (a
 * temporary SQLite file; a throwaway PostgreSQL cluster, as in the tests). Both files get the
 * same name and timestamp; add them to migrations/<dialect>/index.ts and the name to
 * migrations/names.ts, and read them over.
 *
 * Usage: npm run migration:create -- <name> [--dialect sqlite|postgresql]
 * A full existing name (Migration20261129140937_instances) writes that migration's missing twin.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { migrate } from '../src/store/migrate.ts';
import { DIALECTS, initOrm, type Dialect, type StoreOptions } from '../src/store/orm.ts';
import { schemaDrift } from '../src/store/schema-drift.ts';
import { startPostgresCluster } from '../test/support/postgres.ts';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { dialect: { type: 'string' } } });
const name = positionals[0];
if (!name || !/^\w+$/.test(name) || (values.dialect && !DIALECTS.includes(values.dialect as Dialect))) {
  console.error('usage: npm run migration:create -- <name> [--dialect sqlite|postgresql]');
  process.exit(2);
}
const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
const className = /^Migration\d{14}_\w+$/.test(name) ? name : `Migration${stamp}_${name}`;
const dialects = values.dialect ? [values.dialect as Dialect] : DIALECTS;

/** The migration file: one addSql per statement of the diff. */
function source(dialect: Dialect, up: string): string {
  const statements = up
    .split(/;\n/)
    .map((s) => s.trim().replace(/;$/, ''))
    .filter(Boolean)
    .map((s) => `    this.addSql(\`${`${s};`.replace(/[\\`]/g, '\\$&').replace(/\$\{/g, '\\${')}\`);`);
  return [
    "import { Migration } from '@mikro-orm/migrations';",
    '',
    `/** TODO: what this migration is for (${dialect}). */`,
    `export class ${className} extends Migration {`,
    '  override async up(): Promise<void> {',
    ...statements,
    '  }',
    '}',
    '',
  ].join('\n');
}

async function create(dialect: Dialect, options: StoreOptions): Promise<void> {
  const file = path.resolve('daemon/src/store/migrations', dialect, `${className}.ts`);
  if (existsSync(file)) {
    console.log(`${dialect}: ${path.relative(process.cwd(), file)} exists; left as it is`);
    return;
  }
  const orm = await initOrm(options);
  try {
    await migrate(orm);
    const { up } = await schemaDrift(orm);
    if (!up.trim()) {
      console.log(`${dialect}: no schema changes`);
      return;
    }
    writeFileSync(file, source(dialect, up));
    console.log(`${dialect}: created ${path.relative(process.cwd(), file)}; add it to migrations/${dialect}/index.ts (and its name to migrations/names.ts)`);
  } finally {
    await orm.close();
  }
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-mig-'));
const cluster = dialects.includes('postgresql') ? await startPostgresCluster() : undefined;
try {
  for (const dialect of dialects) {
    if (dialect === 'sqlite') await create(dialect, { driver: 'sqlite', sqlitePath: path.join(dir, 'scratch.db') });
    else await create(dialect, { driver: 'postgresql', url: cluster?.url as string });
  }
} finally {
  cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
}
