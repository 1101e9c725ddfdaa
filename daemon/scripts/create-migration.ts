/**
 * Developer tool: generates the next SQLite migration from the difference between the entity
 * definitions and the schema the existing migrations build (applied to a scratch database).
 * Usage: npm run migration:create -- <name>
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MikroORM } from '@mikro-orm/better-sqlite';
import { ormConfig } from '../src/store/orm.ts';

const name = process.argv[2];
const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-mig-'));
try {
  const base = ormConfig(path.join(dir, 'scratch.db'));
  const orm = await MikroORM.init({
    ...base,
    migrations: { ...base.migrations, path: path.resolve('daemon/src/store/migrations/sqlite'), emit: 'ts', snapshot: false },
  });
  await orm.getMigrator().up();
  const result = await orm.getMigrator().createMigration(undefined, false, false, name);
  console.log(result.fileName ? `created ${result.fileName}; add it to migrations/sqlite/index.ts` : 'no schema changes');
  await orm.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
