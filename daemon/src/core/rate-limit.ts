/**
 * Fixed-window counters in the database (shared by every instance): login failures, wrong
 * SecuPass attempts. One atomic upsert per hit, valid on SQLite and PostgreSQL.
 */
import type { Em } from './context.ts';

/** Counts one hit for `key`; returns the count in the current window (a new window starts at 1). */
export async function countHit(em: Em, key: string, windowSeconds: number, now: Date): Promise<number> {
  const nowMs = now.getTime();
  const cutoff = nowMs - windowSeconds * 1000;
  const rows = await em.execute<Array<{ count: number | string }>>(
    `insert into rate_counter (key, window_start, count) values (?, ?, 1)
     on conflict (key) do update set
       count = case when rate_counter.window_start <= ? then 1 else rate_counter.count + 1 end,
       window_start = case when rate_counter.window_start <= ? then ? else rate_counter.window_start end
     returning count`,
    [key, nowMs, cutoff, cutoff, nowMs],
    'all',
  );
  return Number(rows[0]?.count ?? 1);
}

/** Hits counted for `key` in the current window (0 if none). */
export async function currentCount(em: Em, key: string, windowSeconds: number, now: Date): Promise<number> {
  const rows = await em.execute<Array<{ count: number | string; window_start: number | string }>>('select count, window_start from rate_counter where key = ?', [key], 'all');
  const row = rows[0];
  if (!row || Number(row.window_start) <= now.getTime() - windowSeconds * 1000) return 0;
  return Number(row.count);
}

/** Seconds until the window of `key` ends. */
export async function retryAfterSeconds(em: Em, key: string, windowSeconds: number, now: Date): Promise<number> {
  const rows = await em.execute<Array<{ window_start: number | string }>>('select window_start from rate_counter where key = ?', [key], 'all');
  const start = Number(rows[0]?.window_start ?? now.getTime());
  return Math.max(1, Math.ceil((start + windowSeconds * 1000 - now.getTime()) / 1000));
}

/** Clears the counter of `key` (e.g. after a successful login). */
export async function clearHits(em: Em, key: string): Promise<void> {
  await em.execute('delete from rate_counter where key = ?', [key], 'run');
}
