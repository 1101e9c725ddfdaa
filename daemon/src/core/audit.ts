/**
 * The audit trail: one AuditEvent per state change, written in the same transaction, each
 * hash-chained to the one before (sha256 over the previous hash and the canonical event), so
 * `verifyAuditChain` detects any edited, removed or reordered record.
 */
import { createHash } from 'node:crypto';
import { AuditEventSchema, AuditHeadSchema } from '../store/entities.ts';
import type { Actor, Em } from './context.ts';

/** What to record. `data` must never hold a secret (SecuPass, token, password, plaintext). */
export interface AuditEntry {
  action: string;
  actor: Actor;
  targetType?: string;
  targetId?: string;
  data?: Record<string, unknown>;
}

const GENESIS = '0'.repeat(64);

/** JSON with object keys sorted, so equal values hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

function eventHash(prevHash: string, e: { seq: number; at: Date; actorId: string | null; actor: string | null; action: string; targetType: string | null; targetId: string | null; data: Record<string, unknown>; ip: string | null }): string {
  const body = canonicalJson({ ...e, at: e.at.toISOString() });
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}

/**
 * Appends an event inside the caller's transaction. The head row is created or incremented
 * first in one upsert, which takes its row lock on PostgreSQL (and the write lock on SQLite):
 * appenders are serialized, the very first ones too. It returns the new sequence number and
 * the hash before this event (bigint comes back as a string on PostgreSQL).
 */
export async function audit(em: Em, entry: AuditEntry, at: Date): Promise<void> {
  const bumped = await em.execute<Array<{ seq: number | string; hash: string }>>(
    'insert into audit_head (id, seq, hash) values (1, 1, ?) on conflict (id) do update set seq = audit_head.seq + 1 returning seq, hash',
    [GENESIS],
    'all',
  );
  const head = bumped[0];
  if (!head) throw new Error('audit head upsert returned no row');
  const seq = Number(head.seq);
  const prevHash = head.hash;
  const row = {
    seq,
    at,
    actorId: entry.actor.accountId,
    actor: entry.actor.email,
    action: entry.action,
    targetType: entry.targetType ?? null,
    targetId: entry.targetId ?? null,
    data: entry.data ?? {},
    ip: entry.actor.ip ?? null,
  };
  const hash = eventHash(prevHash, row);
  await em.execute('update audit_head set hash = ? where id = 1', [hash], 'run');
  em.create(AuditEventSchema, { ...row, prevHash, hash });
}

/** Result of verifyAuditChain. */
export interface AuditVerification {
  ok: boolean;
  events: number;
  /** First sequence number where the chain breaks. */
  brokenAt?: number;
  reason?: string;
}

/** Recomputes the whole chain and compares it with the head. */
export async function verifyAuditChain(em: Em): Promise<AuditVerification> {
  let prev = GENESIS;
  let expectedSeq = 1;
  let count = 0;
  const batch = 1000;
  for (let offset = 0; ; offset += batch) {
    const rows = await em.find(AuditEventSchema, {}, { orderBy: { seq: 'asc' }, limit: batch, offset });
    for (const r of rows) {
      if (r.seq !== expectedSeq) return { ok: false, events: count, brokenAt: expectedSeq, reason: 'a record is missing' };
      if (r.prevHash !== prev) return { ok: false, events: count, brokenAt: r.seq, reason: 'previous-hash link broken' };
      const h = eventHash(prev, { seq: r.seq, at: r.at, actorId: r.actorId ?? null, actor: r.actor ?? null, action: r.action, targetType: r.targetType ?? null, targetId: r.targetId ?? null, data: r.data, ip: r.ip ?? null });
      if (h !== r.hash) return { ok: false, events: count, brokenAt: r.seq, reason: 'record content altered' };
      prev = r.hash;
      expectedSeq++;
      count++;
    }
    if (rows.length < batch) break;
  }
  const head = await em.findOne(AuditHeadSchema, { id: 1 });
  if (count > 0 && (!head || head.hash !== prev || head.seq !== count)) return { ok: false, events: count, brokenAt: count, reason: 'records after the last one were removed' };
  return { ok: true, events: count };
}

/** Filters of queryAudit. */
export interface AuditFilter {
  action?: string | undefined;
  /** Substring of the actor's e-mail address. */
  actor?: string | undefined;
  targetId?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  limit?: number | undefined;
}

/** Audit events matching the filter, newest first. */
export async function queryAudit(em: Em, f: AuditFilter) {
  const where: Record<string, unknown> = {};
  // Actions and actors are stored in lower case; lowering the filter makes `like` match alike
  // on SQLite (case-insensitive) and PostgreSQL (case-sensitive).
  if (f.action) where.action = { $like: `${f.action.toLowerCase().replace(/[%_]/g, '')}%` };
  if (f.actor) where.actor = { $like: `%${f.actor.toLowerCase().replace(/[%_]/g, '')}%` };
  if (f.targetId) where.targetId = f.targetId;
  if (f.since || f.until) where.at = { ...(f.since ? { $gte: f.since } : {}), ...(f.until ? { $lte: f.until } : {}) };
  const rows = await em.find(AuditEventSchema, where, { orderBy: { seq: 'desc' }, limit: Math.min(f.limit ?? 200, 1000) });
  return rows.map((r) => ({ seq: r.seq, at: r.at.toISOString(), actor: r.actor ?? null, action: r.action, targetType: r.targetType ?? null, targetId: r.targetId ?? null, ip: r.ip ?? null, data: r.data }));
}
