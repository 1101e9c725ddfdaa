/** A real SMTP listener (smtp-server + mailparser) on 127.0.0.1 that collects mails for tests. */
import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** A caught mail. */
export interface CaughtMail {
  to: string[];
  from: string;
  subject: string;
  text: string;
  html: string;
  raw: string;
  template: string | undefined;
}

/** The listener and what it caught. */
export class SmtpCatcher {
  readonly mails: CaughtMail[] = [];
  private waiters: Array<() => void> = [];
  private server: SMTPServer | undefined;
  port = 0;
  /** Milliseconds each accepted mail is held before the server answers (a slow relay). */
  delayMs = 0;

  /** Starts listening on a free loopback port. */
  async start(): Promise<this> {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks);
          simpleParser(raw).then(
            (parsed) => {
              this.mails.push({
                to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
                from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
                subject: parsed.subject ?? '',
                text: parsed.text ?? '',
                html: typeof parsed.html === 'string' ? parsed.html : '',
                raw: raw.toString('utf8'),
                template: parsed.headers.get('x-sealdrop-template') as string | undefined,
              });
              this.waiters.splice(0).forEach((w) => w());
              if (this.delayMs > 0) setTimeout(() => callback(), this.delayMs);
              else callback();
            },
            (err: Error) => callback(err),
          );
        });
      },
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = ((this.server as unknown as { server: { address(): AddressInfo } }).server.address() as AddressInfo).port;
    return this;
  }

  /** Mails to `to` (optionally of one template). */
  to(to: string, template?: string): CaughtMail[] {
    return this.mails.filter((m) => m.to.includes(to.toLowerCase()) && (!template || m.template === template));
  }

  /** Waits until `count` mails to `to` with `template` arrived; returns the newest. */
  async waitFor(to: string, template: string, count = 1, timeoutMs = 20_000): Promise<CaughtMail> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.to(to, template);
      if (found.length >= count) return found[found.length - 1] as CaughtMail;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${template} mail #${count} to ${to} within ${timeoutMs} ms; got: ${this.mails.map((m) => `${m.template}->${m.to.join(',')}`).join('; ')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Stops listening. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** The first link in a mail's text that starts with `prefix`. */
export function linkIn(mail: CaughtMail, prefix: string): URL {
  const match = mail.text.match(new RegExp(`${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\S*`));
  if (!match) throw new Error(`no link starting with ${prefix} in mail "${mail.subject}":\n${mail.text}`);
  return new URL(match[0]);
}
