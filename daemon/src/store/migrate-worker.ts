/**
 * Worker thread body of store/orm.ts `migrateIsolated`: opens a store of its own, applies what
 * is pending, closes it and posts the names applied. The migrator and its dependencies are
 * loaded in this thread only and leave with it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { migrate } from './migrate.ts';
import { initOrm, type StoreOptions } from './orm.ts';

/** What the worker answers. */
export type MigrateResult = { ok: true; applied: string[] } | { ok: false; message: string };

async function run(options: StoreOptions): Promise<string[]> {
  const orm = await initOrm(options);
  try {
    return await migrate(orm);
  } finally {
    await orm.close();
  }
}

const port = parentPort;
if (!port) throw new Error('migrate-worker must run in a worker thread');
run(workerData as StoreOptions).then(
  (applied) => port.postMessage({ ok: true, applied } satisfies MigrateResult),
  (err: unknown) => port.postMessage({ ok: false, message: (err as Error).message } satisfies MigrateResult),
);
