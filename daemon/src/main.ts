/**
 * Wiring: everything the daemon runs, started in order and stopped in reverse — store, keys,
 * blob store, core, recovery, mail worker, timers, HTTP listener. Graceful shutdown stops
 * accepting, lets transfers finish (up to the timeout), flushes the outbox and closes the store.
 */
import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import type { LoadedConfig } from './config/load.ts';
import { CoreEvents } from './core/events.ts';
import { Core } from './core/index.ts';
import { HEARTBEAT_MS } from './core/tree.ts';
import { Kek } from './crypto/at-rest.ts';
import { EncryptPool } from './crypto/encrypt-pool.ts';
import { createLogger } from './log.ts';
import { runRetention } from './retention.ts';
import { fileSender, MailWorker, smtpSender, type MailSender } from './mail/worker.ts';
import { Metrics, startMetricsServer, type MetricsServer } from './metrics.ts';
import { startHttpServer, type HttpServer } from './protocols/http/server.ts';
import { startSftpServer, type SftpServer } from './protocols/sftp/server.ts';
import { AccountSchema } from './store/entities.ts';
import { IdleReclaimer, loadGc } from './util/gc.ts';
import { loadMallocControl, MallocTrimmer } from './util/malloc-trim.ts';
import { keyWorkWatch } from './crypto/isolated-keys.ts';
import { nativeCfbStatus } from './crypto/native-cfb.ts';
import { FsBlobStore } from './store/fs-blob-store.ts';
import { openStore, pendingMigrations, storeOptionsFrom, type Orm } from './store/orm.ts';

/** A running daemon. */
export interface Daemon {
  core: Core;
  orm: Orm;
  log: Logger;
  mail: MailWorker;
  http: HttpServer | undefined;
  sftp: SftpServer | undefined;
  /** The Prometheus listener (`metrics.enabled`). */
  metrics?: MetricsServer | undefined;
  /** Stops everything in order; idempotent. */
  stop(): Promise<void>;
  /**
   * SIGHUP: applies the drop folders and the TLS certificate of a freshly loaded configuration;
   * names other changed sections, which need a restart. A failing reload keeps the old state.
   */
  reload(next: LoadedConfig): Promise<void>;
}

/** Options of startDaemon (tests inject a mail sender or a logger). */
export interface StartOptions {
  log?: Logger;
  mailSender?: MailSender;
}

/** Starts the daemon from a loaded configuration. */
export async function startDaemon(loaded: LoadedConfig, options: StartOptions = {}): Promise<Daemon> {
  const { config, paths } = loaded;
  const log = options.log ?? createLogger(config.log.level);
  mkdirSync(paths.dataDir, { recursive: true, mode: 0o700 });

  const orm = await openStore({ ...storeOptionsFrom(loaded), migrate: config.database.autoMigrate });
  const pending = await pendingMigrations(orm);
  if (pending.length > 0) {
    await orm.close();
    throw new Error(`the database needs migrations (${pending.join(', ')}); run "sealdrop migrate" or set database.autoMigrate`);
  }
  const kek = await Kek.load(paths.kekFile, (file) =>
    log.warn({ file }, 'generated a new key-encryption key: back it up and keep it outside the data folder; without it level 1/2 deliveries and queued mail cannot be read'),
  );
  const blobs = new FsBlobStore(paths.blobDir, { directWrites: config.storage.directWrites });
  await blobs.init();
  const events = new CoreEvents((event, err) => log.error({ err, event }, 'event listener failed'));
  const metrics = config.metrics.enabled ? new Metrics({ orm, log: log.child({ component: 'metrics' }) }) : undefined;
  metrics?.subscribe(events);
  let metricsServer: MetricsServer | undefined;
  if (metrics) {
    // Before workers and timers exist: a port in use fails the start cleanly.
    metricsServer = await startMetricsServer({ metrics, host: config.metrics.host, port: config.metrics.port, log }).catch(async (err: unknown) => {
      await orm.close();
      throw err;
    });
    const host = config.metrics.host.includes(':') ? `[${config.metrics.host}]` : config.metrics.host;
    log.info({ metricsUrl: `http://${host}:${metricsServer.port}/metrics`, port: metricsServer.port }, 'metrics listening');
  }
  const threads = config.crypto.encryptionThreads;
  const encryptPool = threads === 0 ? undefined : new EncryptPool(threads > 0 ? threads : undefined, blobs.directWrites.on);
  const core = new Core({ orm, config, blobs, kek, log: log.child({ component: 'core' }), clock: { now: () => new Date() }, events, encryptPool });

  // Recovery: with SQLite only this process uses the data folder, so anything half-written is stale.
  // With SQLite no other process writes this store, so whatever is half-written is stale; on a
  // shared store other instances' uploads in flight are spared by the grace period.
  const graceMs = config.database.driver === 'sqlite' ? 0 : config.storage.orphanGraceSeconds * 1000;
  // This instance registers; with SQLite, rows of a previous process (crashed) are dropped now.
  if (config.database.driver === 'sqlite') await core.tree.removeOtherInstances();
  await core.tree.heartbeat();
  const heartbeat = setInterval(() => {
    core.tree.heartbeat().catch((err: unknown) => log.error({ err }, 'instance heartbeat failed'));
  }, HEARTBEAT_MS);
  heartbeat.unref();
  const recovered = await core.deliveries.recoverOrphans(graceMs);
  const emptyFolders = await core.tree.removeEmptyFolders(graceMs);
  if (recovered.temp || recovered.orphans || emptyFolders) log.info({ ...recovered, emptyFolders }, 'removed leftovers of interrupted uploads');
  await checkDropFolders(core, log);

  const sender = options.mailSender ?? (config.mail.transport === 'smtp' ? smtpSender(config.mail.smtp) : fileSender(paths.mailDir));
  const mail = new MailWorker({ orm, kek, config, sender, log: log.child({ component: 'mail' }), onAttempt: metrics?.onMailAttempt });
  events.on('outbox.enqueued', () => mail.poke());
  mail.start();

  const mailDir = config.mail.transport === 'file' ? paths.mailDir : undefined;
  let retentionRunning = false;
  const expiry = setInterval(() => {
    if (retentionRunning) return;
    retentionRunning = true;
    runRetention(core, mailDir)
      .then(
        (r) => Object.values(r).some((n) => n > 0) && log.info(r, 'retention run'),
        (err: unknown) => log.error({ err }, 'retention run failed'),
      )
      .finally(() => {
        retentionRunning = false;
      });
  }, config.deliveries.expirySweepSeconds * 1000);
  expiry.unref();
  const idleSeconds = config.tree.idleSendSeconds;
  const idle = setInterval(
    () => {
      core.tree.sendIdle().then(
        (n) => n > 0 && log.info({ sent: n }, 'idle folders sent'),
        (err: unknown) => log.error({ err }, 'idle send failed'),
      );
    },
    Math.max(1, Math.min(30, Math.floor(idleSeconds / 2) || 30)) * 1000,
  );
  idle.unref();
  const trimmer = startMemoryTrimmer(config.server.memoryTrimSeconds, log, metrics);
  const reclaimer = startIdleReclaimer(core, events, trimmer, log);
  const cfb = nativeCfbStatus();
  if (cfb.native) log.info('encrypting with the native AES-256-CFB + SHA-1 addon (AES-NI, SHA extensions)');
  else log.info({ reason: cfb.reason }, 'encrypting with node:crypto: the native AES-256-CFB + SHA-1 addon is not in use');
  const direct = blobs.directWrites;
  if (direct.on) log.info({ blobDir: paths.blobDir }, 'writing blobs past the page cache (O_DIRECT)');
  else log.info({ blobDir: paths.blobDir, reason: direct.reason }, 'writing blobs through the page cache');

  let http: HttpServer | undefined;
  let sftp: SftpServer | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info('shutting down');
      clearInterval(expiry);
      clearInterval(idle);
      trimmer?.stop();
      reclaimer?.stop();
      const metricsClosed = metricsServer?.close();
      const sftpClosed = sftp?.close(config.server.shutdownTimeoutSeconds * 1000);
      if (http) {
        const timeout = new Promise<void>((resolve) => setTimeout(resolve, config.server.shutdownTimeoutSeconds * 1000).unref());
        await Promise.race([http.close(), timeout]);
        http.server.closeAllConnections();
      }
      await sftpClosed;
      clearInterval(heartbeat);
      await core.tree.unregister().catch((err: unknown) => log.warn({ err }, 'could not unregister the instance'));
      await mail.stop(true);
      await encryptPool?.close();
      await metricsClosed;
      await orm.close();
      log.info('stopped');
      log.flush();
    })();
    return stopping;
  };
  // A listener that cannot start (port in use, unreadable host key) ends the start: what
  // already runs is stopped, so the process exits with the error instead of lingering.
  try {
    if (config.http.enabled) {
      http = await startHttpServer({
        core,
        config,
        log,
        onRequest: metrics?.onHttpRequest,
        ready: async () => {
          await orm.em.fork().getConnection().execute('select 1');
          await blobs.check();
          return true;
        },
      });
      log.info({ url: `${http.tls ? 'https' : 'http'}://${config.http.host}:${http.port}`, publicBaseUrl: config.server.publicBaseUrl }, 'HTTP API listening');
    }

    if (config.sftp.enabled) {
      sftp = await startSftpServer({ core, config, hostKeyDir: paths.hostKeyDir, log });
      log.info({ address: `${config.sftp.host}:${sftp.port}`, hostKeys: sftp.hostKeys.map((k) => `${k.type} ${k.fingerprint}`) }, 'SFTP listening');
    }
  } catch (err) {
    await stop().catch((stopErr: unknown) => log.error({ err: stopErr }, 'stopping after a failed start failed'));
    throw err;
  }
  const reload = async (next: LoadedConfig) => {
    const changed = (Object.keys(next.config) as Array<keyof typeof config>).filter((k) => k !== 'dropFolders' && JSON.stringify(next.config[k]) !== JSON.stringify(config[k]));
    const tlsChanged = JSON.stringify(next.config.http.tls) !== JSON.stringify(config.http.tls);
    if (http?.tls) {
      // Certificates are re-read even when their paths did not change (renewed in place).
      http.reloadTls(next.config.http.tls);
    } else if (tlsChanged) {
      throw new Error('http.tls changed but the listener runs without TLS; restart to switch TLS on');
    }
    config.dropFolders.splice(0, config.dropFolders.length, ...next.config.dropFolders);
    config.http.tls = next.config.http.tls;
    await checkDropFolders(core, log);
    const restart = changed.filter((k) => !(k === 'http' && JSON.stringify({ ...next.config.http, tls: null }) === JSON.stringify({ ...config.http, tls: null })));
    log.info({ dropFolders: config.dropFolders.map((f) => f.name), tls: Boolean(http?.tls), ...(restart.length ? { needRestart: restart } : {}) }, restart.length ? 'configuration reloaded; changes to these sections need a restart' : 'configuration reloaded');
  };
  return { core, orm, log, mail, http, sftp, metrics: metricsServer, stop, reload };
}

async function checkDropFolders(core: Core, log: Logger): Promise<void> {
  const em = core.deps.orm.em.fork();
  for (const folder of core.deps.config.dropFolders) {
    const owner = await em.findOne(AccountSchema, { email: folder.owner });
    if (!owner || owner.state !== 'active') log.warn({ folder: folder.name, owner: folder.owner }, 'drop folder owner has no active account; uploads into it are refused until it has');
  }
}

/** How often the idle reclaimer looks whether a burst of uploads is over (see util/gc.ts). */
const RECLAIM_CHECK_MS = 1000;
/** Bytes stored by a burst from which its last upload reclaims as it ends (IdleReclaimer.transferEnded). */
const EARLY_RECLAIM_BYTES = 64 * 1024 * 1024;

/**
 * One full collection and a malloc trim after each burst of uploads or key work; as its last
 * upload ends when the burst stored EARLY_RECLAIM_BYTES or more (util/gc.ts).
 */
function startIdleReclaimer(core: Core, events: CoreEvents, trimmer: MallocTrimmer | undefined, log: Logger): IdleReclaimer | undefined {
  const loaded = loadGc();
  if ('reason' in loaded) {
    log.info({ reason: loaded.reason }, 'memory is not reclaimed after uploads');
    return undefined;
  }
  // Key work (SecuPass activation, unlocking for a release) runs in worker threads that end with
  // the task and leave garbage and freed malloc memory behind, like an upload.
  const keyWork = keyWorkWatch();
  const busy = () => keyWork() || core.deliveries.uploadsRunning > 0;
  const reclaimer = new IdleReclaimer({ busy, collector: loaded.collector, trim: trimmer ? () => trimmer.check() : undefined, intervalMs: RECLAIM_CHECK_MS, earlyBytes: EARLY_RECLAIM_BYTES });
  let storedBytes = 0;
  events.on('file.stored', ({ bytes }) => (storedBytes += bytes));
  events.on('upload.finished', () => {
    reclaimer.transferEnded(storedBytes);
    storedBytes = 0;
  });
  reclaimer.start();
  return reclaimer;
}

/** Memory that malloc holds freed, from which on it is given back (see util/malloc-trim.ts). */
const TRIM_MIN_FREE_BYTES = 8 * 1024 * 1024;

/** Starts the malloc trimmer unless turned off or unavailable (logged once, like its start). */
function startMemoryTrimmer(seconds: number, log: Logger, metrics: Metrics | undefined): MallocTrimmer | undefined {
  if (seconds === 0) return undefined;
  const loaded = loadMallocControl();
  if ('reason' in loaded) {
    log.info({ reason: loaded.reason }, 'freed malloc memory is not given back to the system');
    return undefined;
  }
  const trimmer = new MallocTrimmer(loaded.control, { intervalMs: seconds * 1000, minFreeBytes: TRIM_MIN_FREE_BYTES, onTrim: metrics?.onMemoryTrim });
  trimmer.start();
  return trimmer;
}
