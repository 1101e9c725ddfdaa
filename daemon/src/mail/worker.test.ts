import { readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { enqueueMail } from '../core/outbox.ts';
import { OutboxMessageSchema } from '../store/entities.ts';
import { createHarness, type Harness } from '../../test/support/core-harness.ts';
import { SmtpCatcher } from '../../test/support/smtp.ts';
import { fileSender, MailWorker, smtpSender } from './worker.ts';

let h: Harness;
beforeEach(async () => {
  h = await createHarness({ SEALDROP_MAIL__RETRY_BASE_MS: '300', SEALDROP_MAIL__RETRY_MAX_MS: '600', SEALDROP_MAIL__MAX_ATTEMPTS: '3' });
});
afterEach(async () => h.close());

async function queue(n: number, to = 'r@example.org'): Promise<void> {
  await h.orm.em.fork().transactional(async (em) => {
    for (let i = 0; i < n; i++) {
      enqueueMail(em, h.kek, new Date(), 'password_reset', to, { link: `https://x.example/password-reset?token=sdr_${i}`, expiresAt: new Date().toISOString() });
    }
  });
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const log = pino({ level: 'silent' });

describe('MailWorker', () => {
  it('retries with backoff while SMTP is down, then sends once and wipes the parameters', async () => {
    const port = await freePort();
    const worker = new MailWorker({ orm: h.orm, kek: h.kek, config: h.config, sender: smtpSender({ ...h.config.mail.smtp, port, ignoreTLS: true }), log });
    await queue(1);
    expect(await worker.drain()).toBe(0);
    let row = await h.orm.em.fork().findOneOrFail(OutboxMessageSchema, { to: 'r@example.org' });
    expect(row).toMatchObject({ state: 'pending', attempts: 1 });
    expect(row.lastError).toMatch(/ECONNREFUSED/);
    expect(row.nextAttemptAt.getTime()).toBeGreaterThan(Date.now() - 1000);
    const smtp = new SmtpCatcher();
    await smtp.start();
    const worker2 = new MailWorker({ orm: h.orm, kek: h.kek, config: h.config, sender: smtpSender({ ...h.config.mail.smtp, port: smtp.port, ignoreTLS: true }), log });
    await new Promise((r) => setTimeout(r, 700)); // past the backoff (a loaded machine must not see the retry inside the first drain)
    expect(await worker2.drain()).toBe(1);
    row = await h.orm.em.fork().findOneOrFail(OutboxMessageSchema, { to: 'r@example.org' });
    expect(row).toMatchObject({ state: 'sent', payload: null, attempts: 1 });
    expect(smtp.mails).toHaveLength(1);
    expect(smtp.mails[0]?.text).toContain('password-reset?token=sdr_0');
    expect(smtp.mails[0]?.html).toContain('<a href="https://x.example/password-reset?token=sdr_0">');
    await worker.stop(false);
    await worker2.stop(false);
    await smtp.stop();
  });

  it('gives up after maxAttempts and marks the mail failed', async () => {
    const port = await freePort();
    const worker = new MailWorker({ orm: h.orm, kek: h.kek, config: h.config, sender: smtpSender({ ...h.config.mail.smtp, port, ignoreTLS: true }), log });
    await queue(1);
    for (let i = 0; i < 3; i++) {
      await worker.drain();
      // Wait until the retry is due, however slow the machine is (no fixed sleep).
      const row = await h.orm.em.fork().findOneOrFail(OutboxMessageSchema, { to: 'r@example.org' });
      if (row.state === 'failed') break;
      await new Promise((r) => setTimeout(r, Math.max(0, row.nextAttemptAt.getTime() - Date.now()) + 50));
    }
    expect(await h.orm.em.fork().findOneOrFail(OutboxMessageSchema, { to: 'r@example.org' })).toMatchObject({ state: 'failed', attempts: 3 });
    await worker.stop(false);
  });

  it('sends each mail exactly once with two workers draining at the same time', async () => {
    const smtp = new SmtpCatcher();
    await smtp.start();
    await queue(60);
    const make = () => new MailWorker({ orm: h.orm, kek: h.kek, config: h.config, sender: smtpSender({ ...h.config.mail.smtp, port: smtp.port, ignoreTLS: true }), log });
    const [a, b] = [make(), make()];
    const [na, nb] = await Promise.all([a.drain(), b.drain()]);
    expect(na + nb).toBe(60);
    expect(smtp.mails).toHaveLength(60);
    expect(new Set(smtp.mails.map((m) => m.text.match(/sdr_\d+/)?.[0])).size).toBe(60);
    await Promise.all([a.stop(false), b.stop(false)]);
    await smtp.stop();
  });

  it('writes .eml files (mode 0600) with the file transport', async () => {
    const dir = path.join(h.dir, 'mail');
    const worker = new MailWorker({ orm: h.orm, kek: h.kek, config: h.config, sender: fileSender(dir), log });
    await queue(2);
    expect(await worker.drain()).toBe(2);
    const files = readdirSync(dir);
    expect(files.filter((f) => f.endsWith('.eml'))).toHaveLength(2);
    for (const f of files) {
      expect(statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);
      const text = readFileSync(path.join(dir, f), 'utf8');
      expect(text).toMatch(/^To: r@example\.org$/m);
      expect(text).toMatch(/^Subject: Reset your sealdrop password$/m);
      expect(text).toMatch(/^Auto-Submitted: auto-generated$/m);
    }
    await worker.stop(false);
  });
});
