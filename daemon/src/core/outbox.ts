/**
 * The durable mail outbox, seen from the core: `enqueueMail` writes an OutboxMessage in the
 * caller's transaction, its parameters sealed under the key-encryption key (they may hold a
 * link token). The mail worker (daemon/src/mail) claims, renders and sends them.
 */
import { randomUUID } from 'node:crypto';
import type { Kek } from '../crypto/at-rest.ts';
import { OutboxMessageSchema } from '../store/entities.ts';
import type { Em } from './context.ts';

/** Mail templates and their parameters. Level 3/4 mails never carry message text or file names. */
export interface MailTemplates {
  invitation: { link: string; inviter: string | null; expiresAt: string; deliveries: number };
  password_reset: { link: string; expiresAt: string };
  delivery_ready: { link: string; sender: string; subject: string; level: number; files: string[]; expiresAt: string };
  delivery_link: { link: string; sender: string; subject: string; expiresAt: string };
  secupass_needed: { link: string; sender: string; subject: string };
  release_needed: { link: string; recipient: string; deliveries: Array<{ id: string; subject: string }>; again: boolean };
  download_receipt: { link: string; recipient: string; subject: string; at: string };
  access_lost: { link: string; recipient: string; deliveries: Array<{ id: string; subject: string }> };
  secupass_reset: { link: string; lostDeliveries: number };
  unreleasable: { link: string; subject: string; sender: string; role: 'sender' | 'recipient' };
  delivery_revoked: { sender: string; subject: string };
}

/** A template name. */
export type MailTemplate = keyof MailTemplates;

/** Queues one mail in the caller's transaction. */
export function enqueueMail<T extends MailTemplate>(em: Em, kek: Kek, at: Date, template: T, to: string, params: MailTemplates[T]): void {
  const id = randomUUID();
  em.create(OutboxMessageSchema, {
    id,
    template,
    to,
    payload: kek.seal('outbox', Buffer.from(JSON.stringify(params), 'utf8'), id),
    state: 'pending',
    attempts: 0,
    nextAttemptAt: at,
    createdAt: at,
  });
}
