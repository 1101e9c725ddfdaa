/**
 * Retention, run by the daemon every `deliveries.expirySweepSeconds` and by `sealdrop expire`:
 * expired deliveries lose their blobs and wraps (the delivery record and the audit trail stay),
 * expired sessions and API tokens are deleted, WebDAV locks past their timeout are dropped, and
 * sent mails of the file transport older than `mail.fileRetentionDays` are removed, and what
 * crashed uploads left (here or on another instance) is removed after a grace period.
 */
import { readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Core } from './core/index.ts';

/** What one retention run removed. */
export interface RetentionResult {
  expiredDeliveries: number;
  sessions: number;
  apiTokens: number;
  accountTokens: number;
  mailFiles: number;
  /** Temporary blobs of crashed uploads (untouched for storage.orphanGraceSeconds). */
  tempBlobs: number;
  /** Empty open folder deliveries left by crashed first uploads. */
  emptyFolders: number;
  /** Blobs no file refers to (only with `fullScan`). */
  orphanBlobs: number;
}

/**
 * Runs every retention step once; `mailDir` only with the file transport. `fullScan` also
 * checks every blob for a file that refers to it (start-up and `sealdrop expire`).
 */
export async function runRetention(core: Core, mailDir: string | undefined, options: { fullScan?: boolean } = {}): Promise<RetentionResult> {
  const config = core.deps.config;
  const graceMs = config.storage.orphanGraceSeconds * 1000;
  let expiredDeliveries = 0;
  // expireDue works in batches of 500; keep going until a batch comes back short.
  for (;;) {
    const n = await core.deliveries.expireDue();
    expiredDeliveries += n;
    if (n < 500) break;
  }
  const credentials = await core.accounts.purgeExpiredCredentials();
  await core.dav.sweep();
  const mailFiles = mailDir && config.mail.fileRetentionDays > 0 ? await removeOldMailFiles(mailDir, config.mail.fileRetentionDays, core.deps.clock.now()) : 0;
  // Leftovers of uploads that crashed here or on another instance sharing the store.
  let tempBlobs: number;
  let orphanBlobs = 0;
  if (options.fullScan) ({ temp: tempBlobs, orphans: orphanBlobs } = await core.deliveries.recoverOrphans(graceMs));
  else tempBlobs = await core.deps.blobs.cleanup(graceMs);
  const emptyFolders = await core.tree.removeEmptyFolders(graceMs);
  return { expiredDeliveries, ...credentials, mailFiles, tempBlobs, emptyFolders, orphanBlobs };
}

/** Removes `.eml` files (and stale temporary ones) older than `days` from the mail folder. */
async function removeOldMailFiles(dir: string, days: number, now: Date): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  const cutoff = now.getTime() - days * 86_400_000;
  let removed = 0;
  for (const name of names) {
    if (!/^\.?[\w.-]+\.eml(\.tmp)?$/.test(name)) continue;
    const file = path.join(dir, name);
    try {
      const st = await stat(file);
      if (st.isFile() && st.mtimeMs < cutoff) {
        await unlink(file);
        removed++;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}
