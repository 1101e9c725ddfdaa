/**
 * Prometheus metrics (prom-client) in a registry of their own: counters fed by core events,
 * the mail worker and the HTTP request log; gauges read from the database at scrape time;
 * Node's default process metrics but one (defaultMetrics). Served by a separate plain listener
 * (startMetricsServer), never by the public HTTP server. Label values are bounded (protocols,
 * levels, states, route patterns): never addresses, file names, ids or tokens.
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { raw } from '@mikro-orm/core';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CoreEvents } from './core/events.ts';
import type { MailOutcome } from './mail/worker.ts';
import type { HttpRequestInfo } from './protocols/http/server.ts';
import { DELIVERY_STATES, DeliverySchema, OUTBOX_STATES, OutboxMessageSchema } from './store/entities.ts';
import type { Orm } from './store/orm.ts';

/** Options of Metrics. */
export interface MetricsOptions {
  orm: Orm;
  log: Logger;
}

type Em = ReturnType<Orm['em']['fork']>;
type Sample<L extends string> = { labels: Partial<Record<L, string>>; value: number };

/** Protocols whose transfer gauges exist from the start (others appear on first use). */
const PROTOCOLS = ['api', 'ui', 'sftp', 'webdav'];
/** Outbox states that are still to be worked on (sent rows are history, counted by sealdrop_mail_sent_total). */
const UNSENT_OUTBOX_STATES = OUTBOX_STATES.filter((s) => s !== 'sent');
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK']);
/** Request durations up to long uploads. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * prom-client's default collectors left out. `gc` (nodejs_gc_duration_seconds) observes every
 * garbage collection through a PerformanceObserver: Node builds an entry object per collection
 * and calls into JavaScript for it, and an upload runs ~500 young collections per GiB
 * (util/gc.ts). Measured (1 GiB SFTP uploads, two daemons alternating, seven pairs): the daemon
 * spent ~0.065 CPU-s per GiB more with it, ~1.5% of its work.
 */
export const DEFAULT_METRICS_LEFT_OUT = new Set(['gc']);

/**
 * Registers prom-client's default process metrics (collectDefaultMetrics) except those in
 * DEFAULT_METRICS_LEFT_OUT. collectDefaultMetrics cannot leave one out, so each collector is
 * loaded by the name it lists, from the file it is defined in.
 */
export function defaultMetrics(registry: Registry): string[] {
  const require = createRequire(import.meta.url);
  const registered: string[] = [];
  for (const name of collectDefaultMetrics.metricsList) {
    if (DEFAULT_METRICS_LEFT_OUT.has(name)) continue;
    const collector = require(`prom-client/lib/metrics/${name}`) as (registry: Registry, config: object) => void;
    collector(registry, { eventLoopMonitoringPrecision: 10 }); // collectDefaultMetrics' default
    registered.push(name);
  }
  return registered;
}

/** A label value from a small vocabulary (protocol, reason): anything else becomes `other`. */
function word(value: string): string {
  return /^[a-z0-9_]{1,24}$/.test(value) ? value : 'other';
}

/** The daemon's metrics. */
export class Metrics {
  readonly registry = new Registry();
  private readonly filesStored: Counter<'via'>;
  private readonly storedBytes: Counter<'via'>;
  private readonly downloads: Counter<'via'>;
  private readonly deliveriesCreated: Counter<'level' | 'via'>;
  private readonly deliveriesSent: Counter;
  private readonly deliveriesReleased: Counter;
  private readonly deliveriesRevoked: Counter;
  private readonly deliveriesExpired: Counter;
  private readonly authFailures: Counter<'reason' | 'via'>;
  private readonly secupassActivations: Counter;
  private readonly secupassResets: Counter;
  private readonly transfersActive: Gauge<'protocol'>;
  private readonly transfers: Counter<'protocol' | 'result'>;
  private readonly mailSent: Counter;
  private readonly mailFailures: Counter;
  private readonly memoryTrimmed: Counter;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status'>;

  constructor(private readonly o: MetricsOptions) {
    const registers = [this.registry];
    defaultMetrics(this.registry);
    const counter = <L extends string = string>(name: string, help: string, labelNames: L[] = []) => new Counter<L>({ name: `sealdrop_${name}`, help, labelNames, registers });
    this.filesStored = counter('files_stored_total', 'Files stored (uploads completed), by protocol.', ['via']);
    this.storedBytes = counter('stored_bytes_total', 'Plaintext bytes of the files stored, by protocol.', ['via']);
    this.downloads = counter('downloads_total', 'File downloads started, by protocol.', ['via']);
    this.deliveriesCreated = counter('deliveries_created_total', 'Deliveries created, by level and protocol.', ['level', 'via']);
    this.deliveriesSent = counter('deliveries_sent_total', 'Deliveries sent.');
    this.deliveriesReleased = counter('deliveries_released_total', 'Releases of level 3/4 deliveries (one per release, of one or more recipients).');
    this.deliveriesRevoked = counter('deliveries_revoked_total', 'Deliveries revoked by their sender.');
    this.deliveriesExpired = counter('deliveries_expired_total', 'Deliveries expired.');
    this.authFailures = counter('auth_failures_total', 'Failed logins and rejected tokens, by reason and protocol.', ['reason', 'via']);
    this.secupassActivations = counter('secupass_activations_total', 'SecuPass activations.');
    this.secupassResets = counter('secupass_resets_total', 'SecuPass resets.');
    this.transfers = counter('transfers_total', 'Uploads finished, by protocol and result (completed, aborted).', ['protocol', 'result']);
    this.mailSent = counter('mail_sent_total', 'Notification mails sent.');
    this.mailFailures = counter('mail_failures_total', 'Failed attempts to send a notification mail (retried, or given up after the last).');
    this.memoryTrimmed = counter('memory_trimmed_bytes_total', 'Resident memory given back to the system by trimming what malloc held freed (server.memoryTrimSeconds).');
    this.transfersActive = new Gauge({ name: 'sealdrop_transfers_active', help: 'Uploads in progress, by protocol.', labelNames: ['protocol'], registers });
    for (const protocol of PROTOCOLS) this.transfersActive.set({ protocol }, 0);
    this.httpDuration = new Histogram({
      name: 'sealdrop_http_request_duration_seconds',
      help: 'HTTP requests (API, UI, WebDAV as /dav) until the response started, by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS,
      registers,
    });

    this.dbGauge('deliveries', 'Deliveries by state.', ['state'], async (em) => {
      const counts = await countByState(em, DeliverySchema);
      return DELIVERY_STATES.map((state) => ({ labels: { state }, value: counts.get(state) ?? 0 }));
    });
    this.dbGauge('outbox_depth', 'Notification mails not sent yet, by state (pending, or failed for good).', ['state'], async (em) => {
      const counts = await countByState(em, OutboxMessageSchema);
      return UNSENT_OUTBOX_STATES.map((state) => ({ labels: { state }, value: counts.get(state) ?? 0 }));
    });
    this.dbGauge('outbox_retrying', 'Pending notification mails that failed at least once and wait for a retry.', [], async (em) => [
      { labels: {}, value: Number(await em.count(OutboxMessageSchema, { state: 'pending', attempts: { $gt: 0 } })) },
    ]);
  }

  /** The content type of the exposition format. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The metrics in the text exposition format (runs the database queries). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Counts core events. */
  subscribe(events: CoreEvents): void {
    events.on('file.stored', (e) => {
      this.filesStored.inc({ via: word(e.via) });
      if (e.bytes > 0) this.storedBytes.inc({ via: word(e.via) }, e.bytes);
    });
    events.on('file.downloaded', (e) => this.downloads.inc({ via: word(e.via) }));
    events.on('delivery.created', (e) => this.deliveriesCreated.inc({ level: String(Math.trunc(e.level)), via: word(e.via) }));
    events.on('delivery.sent', () => this.deliveriesSent.inc());
    events.on('delivery.released', () => this.deliveriesReleased.inc());
    events.on('delivery.revoked', () => this.deliveriesRevoked.inc());
    events.on('delivery.expired', () => this.deliveriesExpired.inc());
    events.on('auth.failed', (e) => this.authFailures.inc({ reason: word(e.reason), via: word(e.via) }));
    events.on('secupass.activated', () => this.secupassActivations.inc());
    events.on('secupass.reset', () => this.secupassResets.inc());
    events.on('upload.started', (e) => this.transfersActive.inc({ protocol: word(e.via) }));
    events.on('upload.finished', (e) => {
      this.transfersActive.dec({ protocol: word(e.via) });
      this.transfers.inc({ protocol: word(e.via), result: e.ok ? 'completed' : 'aborted' });
    });
  }

  /** The HTTP server's onRequest hook. */
  readonly onHttpRequest = (info: HttpRequestInfo): void => {
    const method = METHODS.has(info.method) ? info.method : 'other';
    const route = info.route.length <= 120 ? info.route : 'unmatched';
    this.httpDuration.observe({ method, route, status: String(info.status) }, info.seconds);
  };

  /** The mail worker's onAttempt hook. */
  readonly onMailAttempt = (outcome: MailOutcome): void => {
    if (outcome === 'sent') this.mailSent.inc();
    else this.mailFailures.inc();
  };

  /** The MallocTrimmer's onTrim hook. */
  readonly onMemoryTrim = (releasedBytes: number): void => {
    this.memoryTrimmed.inc(releasedBytes);
  };

  /** A gauge set at scrape time from one query on a fresh EntityManager; on failure it reports nothing (and logs). */
  private dbGauge<L extends string>(name: string, help: string, labelNames: L[], read: (em: Em) => Promise<Array<Sample<L>>>): void {
    const { orm, log } = this.o;
    new Gauge<L>({
      name: `sealdrop_${name}`,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        try {
          const samples = await read(orm.em.fork());
          this.reset();
          for (const s of samples) this.set(s.labels, s.value);
        } catch (err) {
          this.reset();
          log.warn({ err, metric: `sealdrop_${name}` }, 'metrics query failed');
        }
      },
    });
  }
}

/** `select state, count(*) ... group by state` (counts may come back as strings on other databases). */
async function countByState(em: Em, entity: typeof DeliverySchema | typeof OutboxMessageSchema): Promise<Map<string, number>> {
  const rows: Array<{ state: string; n: number | string }> = await em
    .createQueryBuilder(entity as typeof DeliverySchema)
    .select(['state', raw('count(*) as n')])
    .groupBy('state')
    .execute('all', false);
  return new Map(rows.map((r) => [r.state, Number(r.n)]));
}

/** Options of startMetricsServer. */
export interface MetricsServerOptions {
  metrics: Metrics;
  host: string;
  port: number;
  log: Logger;
}

/** A started metrics listener. */
export interface MetricsServer {
  server: http.Server;
  port: number;
  close(): Promise<void>;
}

/** Serves `GET /metrics` (and HEAD) on its own plain HTTP listener; everything else is 404. */
export async function startMetricsServer({ metrics, host, port, log }: MetricsServerOptions): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    metrics.text().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        log.error({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('scrape failed\n');
      },
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scrape cut short at shutdown costs nothing; a kept-alive scraper must not hold it up.
        server.closeAllConnections();
      }),
  };
}
