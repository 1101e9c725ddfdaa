/**
 * The HTTP front-end (Koa): JSON API under /api/v1, health checks, security headers, one log
 * line per request (route pattern, status, time; never query strings or bodies).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.ts';
import { fail } from '../../core/errors.ts';
import type { Core } from '../../core/index.ts';
import { apiRouter } from './api.ts';
import { settleUnreadBody } from './body.ts';
import { respondError } from './errors.ts';
import { respondWithLentBody } from './lent-body.ts';
import { mountUi } from '../ui/index.ts';
import { mountWebdav } from '../webdav/index.ts';

/** One finished request as the request log saw it; `route` is a pattern, never a raw path. */
export interface HttpRequestInfo {
  method: string;
  /** The matched route pattern, `/dav` for WebDAV, `/static`, `/healthz`, `/readyz`, or `unmatched`. */
  route: string;
  status: number;
  seconds: number;
}

/** Options of createHttpServer. */
export interface HttpOptions {
  core: Core;
  config: Config;
  log: Logger;
  /** Readiness probe (DB and storage reachable). */
  ready: () => Promise<boolean>;
  /** Called once per request after it was logged (metrics); errors it throws are ignored. */
  onRequest?: (info: HttpRequestInfo) => void;
}

/** The Koa application. */
export function createApp({ core, config, log, ready, onRequest }: HttpOptions): Koa {
  const app = new Koa({ proxy: config.http.trustProxy });
  const reqLog = log.child({ component: 'http' });
  app.silent = true;
  app.on('error', (err: Error) => {
    const code = (err as NodeJS.ErrnoException).code;
    // A client that closes the connection at (or before) the end of a download is no fault.
    const level = code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'EPIPE' ? 'debug' : 'warn';
    reqLog[level]({ err: { message: err.message, code } }, 'http stream error');
  });
  app.on('download-error', (err: Error) => reqLog.warn({ error: err.message }, 'download aborted'));

  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('X-Frame-Options', 'DENY');
    // Nothing outside the web UI's pages (which set their own policy) is a page: a response a
    // browser renders anyway (a delivered .html file over WebDAV) runs no script, submits no
    // form, follows no meta refresh and gets an origin of its own (sandbox).
    ctx.set('Content-Security-Policy', "default-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'; sandbox");
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = { error: { code: 'SEALDROP_E_NOT_FOUND', message: 'not found' } };
      }
    } catch (err) {
      respondError(ctx, err, reqLog);
    }
    try {
      await settleUnreadBody(ctx);
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const matched = (ctx as unknown as { _matchedRoute?: string })._matchedRoute;
      const route = matched && !matched.includes('(?') ? matched : undefined;
      // WebDAV paths are file names: logged as the mount point only.
      const dav = ctx.path === '/dav' || ctx.path.startsWith('/dav/');
      const path = dav ? '/dav/…' : ctx.path.slice(0, 80).replace(/sd[a-z]_[A-Za-z0-9_-]+/g, '[token]');
      const line = { method: ctx.method, route: route ?? path, status: ctx.status, ms: Math.round(ms), ip: ctx.request.ip, ...(ctx.state.davAccount ? { account: ctx.state.davAccount as string } : {}) };
      const body = ctx.body as { error?: { code?: string } } | undefined;
      const code = body?.error?.code ?? (ctx.state.errorCode as string | undefined);
      if (ctx.status >= 500) reqLog.error({ ...line, code }, 'request failed');
      else reqLog.info({ ...line, ...(code ? { code } : {}) }, 'request');
      respondWithLentBody(ctx);
      try {
        const fixed = ctx.path === '/healthz' || ctx.path === '/readyz' ? ctx.path : ctx.path.startsWith('/static/') ? '/static' : 'unmatched';
        onRequest?.({ method: ctx.method, route: route ?? (dav ? '/dav' : fixed), status: ctx.status, seconds: ms / 1000 });
      } catch {
        // metrics never fail a request
      }
    }
  });

  app.use(async (ctx, next) => {
    // A NUL in the query means nothing to any route; the database would refuse it in a filter
    // with an internal error. (Paths: names are validated, ids checked for their form.)
    if (/%00/.test(ctx.querystring) || ctx.querystring.includes('\u0000')) throw fail('SEALDROP_E_VALIDATION', 'the query contains a NUL character');
    if (ctx.path === '/healthz') {
      ctx.body = { status: 'ok' };
      return;
    }
    if (ctx.path === '/readyz') {
      const ok = await ready().catch(() => false);
      ctx.status = ok ? 200 : 503;
      ctx.body = { status: ok ? 'ready' : 'not ready' };
      return;
    }
    await next();
  });

  mountWebdav(app, core, config, log);
  mountUi(app, core, config);
  const api = apiRouter({ core, config });
  app.use(api.routes());
  app.use(api.allowedMethods());
  return app;
}

/** A started HTTP server. */
export interface HttpServer {
  server: http.Server | https.Server;
  port: number;
  /** True when it serves HTTPS (http.tls). */
  tls: boolean;
  /** Re-reads the certificate and key files (SIGHUP); throws with a clear message if they are unusable. */
  reloadTls(tls: Config['http']['tls']): void;
  close(): Promise<void>;
}

/** Reads the PEM certificate chain and key named in the configuration. */
function readTls(tls: Config['http']['tls']): { cert: Buffer; key: Buffer } | undefined {
  if (!tls.certFile || !tls.keyFile) return undefined;
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`http.tls.${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const cert = read(tls.certFile, 'certFile');
  const key = read(tls.keyFile, 'keyFile');
  try {
    // Fails early on a key that does not match the certificate, or on garbage.
    https.createServer({ cert, key }).close();
  } catch (err) {
    throw new Error(`http.tls: the certificate and key are not usable together: ${(err as Error).message}`);
  }
  return { cert, key };
}

/** Starts listening on the configured host and port. */
export async function startHttpServer(options: HttpOptions): Promise<HttpServer> {
  const app = createApp(options);
  const tls = readTls(options.config.http.tls);
  const server = tls ? https.createServer({ ...tls, minVersion: 'TLSv1.2' }, app.callback()) : http.createServer(app.callback());
  server.requestTimeout = 0; // large uploads; idle sockets are bounded by the timeouts below
  server.headersTimeout = 60_000;
  // A connection that sends nothing for two minutes (a stalled body) is closed.
  server.timeout = 120_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.config.http.port, options.config.http.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    tls: Boolean(tls),
    reloadTls(next) {
      if (!tls) throw new Error('the HTTP listener started without TLS; restart to switch TLS on');
      const fresh = readTls(next);
      if (!fresh) throw new Error('http.tls is no longer configured; restart to switch TLS off');
      (server as https.Server).setSecureContext({ ...fresh, minVersion: 'TLSv1.2' });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
