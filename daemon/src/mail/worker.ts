/**
 * MailWorker: sends the durable outbox. Claims due rows with a conditional update (so two
 * instances never take the same row), renders them, sends through nodemailer (SMTP, or `.eml`
 * files in the mail folder by default), retries with exponential backoff, and wipes a row's
 * sealed parameters once sent.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as Nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { MailTemplate, MailTemplates } from '../core/outbox.ts';
import type { Kek } from '../crypto/at-rest.ts';
import { OutboxMessageSchema, type OutboxMessage } from '../store/entities.ts';
import type { Orm } from '../store/orm.ts';
import { renderMail } from './templates.ts';

/** Sends one mail (nodemailer message fields). */
export interface MailSender {
  send(mail: { from: string; to: string; subject: string; text: string; html: string; headers: Record<string, string>; messageId: string }): Promise<void>;
  close(): void;
}

/** nodemailer, loaded on the first mail (it is large, and many daemons send little). */
let nodemailerModule: Promise<typeof Nodemailer> | undefined;
function nodemailer(): Promise<typeof Nodemailer> {
  nodemailerModule ??= import('nodemailer');
  return nodemailerModule;
}

/** SMTP through nodemailer (pooled connections). */
export function smtpSender(cfg: Config['mail']['smtp']): MailSender {
  let transport: Promise<Transporter> | undefined;
  const get = () =>
    (transport ??= nodemailer().then((m) =>
      m.default.createTransport({
        pool: true,
        maxConnections: 2,
        host: cfg.host,
        port: cfg.port,
        secure: cfg.secure,
        requireTLS: cfg.requireTLS,
        ignoreTLS: cfg.ignoreTLS,
        ...(cfg.user ? { auth: { user: cfg.user, pass: cfg.password ?? '' } } : {}),
        connectionTimeout: 15_000,
        greetingTimeout: 15_000,
        socketTimeout: 30_000,
      }),
    ));
  return {
    async send(mail) {
      await (await get()).sendMail(mail);
    },
    close() {
      void transport?.then((t) => t.close());
    },
  };
}

/** Writes each mail as an RFC 5322 `.eml` file (mode 0600) into `dir`, atomically. */
export function fileSender(dir: string): MailSender {
  let transport: Promise<Transporter> | undefined;
  const get = () => (transport ??= nodemailer().then((m) => m.default.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })));
  return {
    async send(mail) {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      const info = await (await get()).sendMail(mail);
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const name = `${stamp}-${randomBytes(4).toString('hex')}.eml`;
      const tmp = path.join(dir, `.${name}.tmp`);
      await fs.writeFile(tmp, info.message as Buffer, { mode: 0o600 });
      await fs.rename(tmp, path.join(dir, name));
    },
    close() {
      void transport?.then((t) => t.close());
    },
  };
}

/** What one attempt to send an outbox row came to: sent, failed with a retry due, or failed for good. */
export type MailOutcome = 'sent' | 'retry' | 'failed';

/** Options of the worker. */
export interface MailWorkerOptions {
  orm: Orm;
  kek: Kek;
  config: Config;
  sender: MailSender;
  log: Logger;
  /** Told the outcome of every attempt, after the row was updated (metrics); errors it throws are logged. */
  onAttempt?: (outcome: MailOutcome) => void;
}

/** The outbox worker. */
export class MailWorker {
  private readonly instance = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly o: MailWorkerOptions) {}

  /** Starts polling. */
  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Asks for a run soon (e.g. after new rows were queued). */
  poke(): void {
    if (this.stopped) return;
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = this.drain()
      .then(() => undefined)
      .catch((err: unknown) => this.o.log.error({ err, code: 'SEALDROP_E_INTERNAL' }, 'mail outbox run failed'))
      .finally(() => {
        this.running = undefined;
        const soon = this.again;
        this.again = false;
        this.schedule(soon ? 0 : this.o.config.mail.pollIntervalMs);
      });
    await this.running;
  }

  /** Sends every due message now; resolves when no due message is left (used by shutdown and tests). */
  async drain(): Promise<number> {
    let sent = 0;
    for (;;) {
      const batch = await this.claim(10);
      if (batch.length === 0) return sent;
      for (const row of batch) {
        // The lease may have run out while earlier rows of the batch were sent; another
        // instance may have taken this one since. Renewing is conditional, so one of us wins.
        if (!(await this.renewClaim(row))) continue;
        if (await this.deliver(row)) sent++;
      }
    }
  }

  private async renewClaim(row: OutboxMessage): Promise<boolean> {
    const claimedUntil = new Date(Date.now() + this.o.config.mail.claimSeconds * 1000);
    const n = await this.o.orm.em.fork().nativeUpdate(OutboxMessageSchema, { id: row.id, state: 'pending', claimedBy: this.instance }, { claimedUntil });
    return n === 1;
  }

  private async claim(limit: number): Promise<OutboxMessage[]> {
    const em = this.o.orm.em.fork();
    const now = new Date();
    const due = await em.find(
      OutboxMessageSchema,
      { state: 'pending', nextAttemptAt: { $lte: now }, $or: [{ claimedUntil: null }, { claimedUntil: { $lt: now } }] },
      { orderBy: { nextAttemptAt: 'asc' }, limit },
    );
    const mine: OutboxMessage[] = [];
    for (const row of due) {
      const claimedUntil = new Date(now.getTime() + this.o.config.mail.claimSeconds * 1000);
      const n = await em.nativeUpdate(
        OutboxMessageSchema,
        { id: row.id, state: 'pending', nextAttemptAt: { $lte: now }, $or: [{ claimedUntil: null }, { claimedUntil: { $lt: now } }] },
        { claimedBy: this.instance, claimedUntil },
      );
      if (n === 1) mine.push(row);
    }
    return mine;
  }

  private async deliver(row: OutboxMessage): Promise<boolean> {
    const em = this.o.orm.em.fork();
    const log = this.o.log.child({ outboxId: row.id, template: row.template });
    try {
      if (!row.payload) throw new Error('outbox row has no payload');
      const params = JSON.parse(this.o.kek.open('outbox', row.payload, row.id).toString('utf8')) as MailTemplates[MailTemplate];
      const rendered = renderMail(row.template as MailTemplate, params);
      await this.o.sender.send({
        from: this.o.config.mail.from,
        to: row.to,
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        messageId: `<${row.id}@sealdrop>`,
        headers: { 'Auto-Submitted': 'auto-generated', 'X-Sealdrop-Template': row.template },
      });
      await em.nativeUpdate(OutboxMessageSchema, { id: row.id, claimedBy: this.instance }, { state: 'sent', sentAt: new Date(), payload: null, claimedBy: null, claimedUntil: null, lastError: null });
      log.info({ to: row.to }, 'mail sent');
      this.report('sent');
      return true;
    } catch (err) {
      const attempts = row.attempts + 1;
      const { maxAttempts, retryBaseMs, retryMaxMs } = this.o.config.mail;
      const failed = attempts >= maxAttempts;
      const delay = Math.min(retryMaxMs, retryBaseMs * 2 ** (attempts - 1)) * (0.8 + Math.random() * 0.4);
      const message = (err as Error).message?.slice(0, 500) ?? String(err);
      await em.nativeUpdate(
        OutboxMessageSchema,
        { id: row.id, claimedBy: this.instance },
        { attempts, state: failed ? 'failed' : 'pending', nextAttemptAt: new Date(Date.now() + delay), lastError: message, claimedBy: null, claimedUntil: null },
      );
      if (failed) log.error({ code: 'SEALDROP_E_UNAVAILABLE', attempts, error: message }, 'mail given up after the last retry');
      else log.warn({ attempts, retryInMs: Math.round(delay), error: message }, 'mail failed; will retry');
      this.report(failed ? 'failed' : 'retry');
      return false;
    }
  }

  private report(outcome: MailOutcome): void {
    try {
      this.o.onAttempt?.(outcome);
    } catch (err) {
      this.o.log.warn({ err }, 'mail attempt hook failed');
    }
  }

  /** Stops polling and waits for a run in progress; then sends what is due once more (graceful shutdown). */
  async stop(flush = true): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    if (flush) await this.drain().catch((err: unknown) => this.o.log.error({ err }, 'mail flush on shutdown failed'));
    this.o.sender.close();
  }
}
