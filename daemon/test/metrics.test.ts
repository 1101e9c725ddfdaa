/**
 * Outside-in: the real daemon with its Prometheus listener on a free port. Scrapes /metrics
 * before and after a small level-2 delivery over the HTTP API (upload, send, download, mail),
 * a failed login, a rejected token and an upload over the size limit, and checks that the
 * counters and gauges moved by exactly that much, that the public listener does not serve
 * /metrics, and that no address, file name, id or token reaches a label.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api } from './support/api.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';

/** One sample of the text exposition format. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

/** A scrape: the value of a series with exactly these labels (0 if absent). */
class Scrape {
  readonly samples: Sample[];
  constructor(readonly text: string) {
    this.samples = parse(text);
  }

  get(name: string, labels: Record<string, string> = {}): number {
    const want = Object.entries(labels);
    const s = this.samples.find((x) => x.name === name && Object.keys(x.labels).length === want.length && want.every(([k, v]) => x.labels[k] === v));
    return s?.value ?? 0;
  }

  has(name: string): boolean {
    return this.samples.some((x) => x.name === name);
  }
}

describe('Prometheus metrics', () => {
  const tag = randomBytes(6).toString('hex');
  const password = { alice: `alice-password-${tag}`, bob: `bob-password-${tag}` };
  const fileName = `quarterly-report-${tag}.txt`;
  const content = Buffer.from(`metrics test content ${tag}\n`);
  let sb: Sandbox;
  let daemon: DaemonProcess;
  let metricsUrl: string;

  const scrape = async (): Promise<Scrape> => {
    const res = await fetch(metricsUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return new Scrape(await res.text());
  };

  /** Scrapes until `ready` holds (counters fed by background work: mail worker, stream ends). */
  const scrapeUntil = async (ready: (s: Scrape) => boolean): Promise<Scrape> => {
    const until = Date.now() + 10_000;
    for (;;) {
      const s = await scrape();
      if (ready(s) || Date.now() > until) return s;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  beforeAll(async () => {
    sb = sandbox({ SEALDROP_SFTP__ENABLED: 'false', SEALDROP_METRICS__PORT: '0', SEALDROP_DELIVERIES__MAX_FILE_BYTES: '4096' });
    for (const [email, pw] of [
      ['alice@example.org', password.alice],
      ['bob@example.org', password.bob],
    ] as const) {
      const r = await runCli(sb, ['account', 'add', '--email', email, '--role', 'member', '--password-stdin'], `${pw}\n`);
      expect(r, r.stderr).toMatchObject({ code: 0 });
    }
    daemon = await startDaemonProcess(sb);
    const m = /"metricsUrl":"(http:\/\/127\.0\.0\.1:(\d+)\/metrics)"[^\n]*"msg":"metrics listening"/.exec(daemon.output());
    expect(m, daemon.output()).not.toBeNull();
    expect(Number(m?.[2])).toBeGreaterThan(0);
    expect(Number(m?.[2])).not.toBe(daemon.port);
    metricsUrl = m?.[1] as string;
  });

  afterAll(async () => {
    expect(await daemon?.stop()).toBe(0);
    sb?.remove();
  });

  it('counts a delivery, failures and requests, on its own listener only, without personal data', async () => {
    const anon = new Api(daemon.url);
    const before = await scrape();
    // Default process metrics, unprefixed; the DB gauges are there from the start.
    expect(before.has('process_cpu_user_seconds_total')).toBe(true);
    expect(before.has('nodejs_eventloop_lag_seconds')).toBe(true);
    expect(before.has('nodejs_heap_space_size_used_bytes')).toBe(true);
    // Left out: it costs every garbage collection a call into JavaScript (metrics.ts).
    expect(before.text).not.toContain('nodejs_gc_duration_seconds');
    expect(before.get('sealdrop_deliveries', { state: 'open' })).toBe(0);
    expect(before.has('sealdrop_outbox_depth')).toBe(true);
    expect(before.get('sealdrop_transfers_active', { protocol: 'api' })).toBe(0);
    // The malloc trimmer runs (its addon loaded in the daemon) and counts what it gave back.
    expect(before.has('sealdrop_memory_trimmed_bytes_total')).toBe(true);
    expect(daemon.output()).not.toContain('freed malloc memory is not given back');

    // A failed login and a rejected bearer token.
    await anon.fails('POST', '/api/v1/session', { email: 'alice@example.org', password: `wrong-${tag}` }, 401, 'SEALDROP_E_LOGIN_FAILED');
    const badToken = `sdt_${randomBytes(24).toString('base64url')}`;
    expect((await anon.as(badToken).call('GET', '/api/v1/deliveries')).status).toBe(401);

    // A level-2 delivery: token, create, upload, send; bob downloads.
    const alice = await anon.login('alice@example.org', password.alice);
    const { token } = await alice.ok<{ token: string }>('POST', '/api/v1/tokens', { name: `cron-${tag}`, scopes: ['send'], expiresInDays: 1 }, 201);
    const cron = anon.as(token);
    const { id } = await cron.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: `Subject ${tag}`, level: 2 }, 201);
    const mid = await scrape();
    expect(mid.get('sealdrop_deliveries', { state: 'open' }) - before.get('sealdrop_deliveries', { state: 'open' })).toBe(1);
    const put = await cron.ok<{ file: { id: string } }>('PUT', `/api/v1/deliveries/${id}/files/${encodeURIComponent(fileName)}`, content, 201);
    // Over the size limit (streamed, no length declared): the upload starts and is aborted.
    const chunk = randomBytes(2048);
    const tooBig = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 4; i++) c.enqueue(chunk);
        c.close();
      },
    });
    const big = await fetch(`${daemon.url}/api/v1/deliveries/${id}/files/too-big-${tag}.bin`, { method: 'PUT', headers: { authorization: `Bearer ${token}` }, body: tooBig, duplex: 'half' } as RequestInit).catch(() => undefined);
    if (big) expect(big.status).toBe(413);
    await cron.ok('POST', `/api/v1/deliveries/${id}/send`);
    const bob = await anon.login('bob@example.org', password.bob);
    const dl = await bob.call('GET', `/api/v1/deliveries/${id}/files/${put.file.id}`);
    expect([dl.status, dl.body]).toEqual([200, content.toString()]);

    const putRoute = { method: 'PUT', route: '/api/v1/deliveries/:id/files/:name', status: '201' };
    const after = await scrapeUntil(
      (s) =>
        s.get('sealdrop_mail_sent_total') - before.get('sealdrop_mail_sent_total') >= 2 &&
        s.get('sealdrop_outbox_depth', { state: 'pending' }) === 0 &&
        s.get('sealdrop_transfers_total', { protocol: 'api', result: 'aborted' }) >= 1,
    );
    const delta = (name: string, labels: Record<string, string> = {}) => after.get(name, labels) - before.get(name, labels);
    expect({
      filesStored: delta('sealdrop_files_stored_total', { via: 'api' }),
      storedBytes: delta('sealdrop_stored_bytes_total', { via: 'api' }),
      downloads: delta('sealdrop_downloads_total', { via: 'api' }),
      created: delta('sealdrop_deliveries_created_total', { level: '2', via: 'api' }),
      sent: delta('sealdrop_deliveries_sent_total'),
      released: delta('sealdrop_deliveries_released_total'),
      revoked: delta('sealdrop_deliveries_revoked_total'),
      expired: delta('sealdrop_deliveries_expired_total'),
      loginFailures: delta('sealdrop_auth_failures_total', { reason: 'password', via: 'api' }),
      tokenFailures: delta('sealdrop_auth_failures_total', { reason: 'token', via: 'api' }),
      activations: delta('sealdrop_secupass_activations_total'),
      transfersCompleted: delta('sealdrop_transfers_total', { protocol: 'api', result: 'completed' }),
      transfersAborted: delta('sealdrop_transfers_total', { protocol: 'api', result: 'aborted' }),
      transfersActive: after.get('sealdrop_transfers_active', { protocol: 'api' }),
      deliveriesOpen: delta('sealdrop_deliveries', { state: 'open' }),
      deliveriesSent: delta('sealdrop_deliveries', { state: 'sent' }),
      mailSent: delta('sealdrop_mail_sent_total'),
      mailFailures: delta('sealdrop_mail_failures_total'),
      outboxPending: after.get('sealdrop_outbox_depth', { state: 'pending' }),
      outboxFailed: after.get('sealdrop_outbox_depth', { state: 'failed' }),
      outboxRetrying: after.get('sealdrop_outbox_retrying'),
      putRequests: delta('sealdrop_http_request_duration_seconds_count', putRoute),
    }).toEqual({
      filesStored: 1,
      storedBytes: content.length,
      downloads: 1,
      created: 1,
      sent: 1,
      released: 0,
      revoked: 0,
      expired: 0,
      loginFailures: 1,
      tokenFailures: 1,
      activations: 0,
      transfersCompleted: 1,
      transfersAborted: 1,
      transfersActive: 0,
      deliveriesOpen: 0,
      deliveriesSent: 1,
      mailSent: 2, // delivery_ready to bob, download_receipt to alice
      mailFailures: 0,
      outboxPending: 0,
      outboxFailed: 0,
      outboxRetrying: 0,
      putRequests: 1,
    });
    expect(after.get('sealdrop_http_request_duration_seconds_bucket', { ...putRoute, le: '+Inf' })).toBeGreaterThanOrEqual(1);
    expect(after.get('sealdrop_http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/session', status: '401' })).toBeGreaterThanOrEqual(1);

    // Route labels are patterns: no raw path, id, file name or token anywhere in the text.
    const routes = new Set(after.samples.filter((s) => s.name === 'sealdrop_http_request_duration_seconds_count').map((s) => s.labels.route));
    for (const route of routes) expect(route).toMatch(/^(\/[A-Za-z0-9/:_.-]*|unmatched)$/);
    for (const leak of ['@', 'example.org', fileName, 'too-big', tag, id, put.file.id, token, badToken]) expect(after.text.includes(leak), `metrics text contains ${leak}`).toBe(false);
    expect(after.text).not.toMatch(/sd[a-z]_[A-Za-z0-9_-]{8,}/);

    // The public listener does not serve metrics; the metrics listener serves nothing else.
    const pub = await fetch(`${daemon.url}/metrics`);
    expect(pub.status).toBe(404);
    expect(await pub.text()).not.toContain('sealdrop_');
    expect((await fetch(metricsUrl.replace(/\/metrics$/, '/'))).status).toBe(404);
    expect((await fetch(`${metricsUrl}x`)).status).toBe(404);
    expect((await fetch(metricsUrl, { method: 'POST' })).status).toBe(405);
  });
});
