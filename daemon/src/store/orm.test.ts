import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore, pendingMigrations } from './orm.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-orm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('store migrations', () => {
  it('build every table and column the entities declare, with the SQLite settings on', async () => {
    const orm = await openStore({ sqlitePath: path.join(dir, 'db.sqlite'), migrate: true });
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
});
