/**
 * WebDAV (RFC 4918, classes 1 and 2) at /dav/ on the HTTP listener, over the core's virtual
 * tree. This adapter parses requests (paths, headers, XML), authenticates with HTTP Basic
 * (password or API token), and maps core errors to statuses. Files, folders, locks and
 * properties are the core's: uploads stream into the core's upload, locks and dead properties
 * are database rows (core/dav.ts), and nothing here keeps state between requests.
 */
import { createHash } from 'node:crypto';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Koa from 'koa';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.ts';
import type { LockInfo, PropPatch } from '../../core/dav.ts';
import { fail, isSealdropError, type SealdropError } from '../../core/errors.ts';
import type { Core, Principal } from '../../core/index.ts';
import type { TreeEntry } from '../../core/tree.ts';
import { wellFormed } from '../../core/validation.ts';
import { detachedBody, hasBody } from '../http/body.ts';
import { HTTP_STATUS } from '../http/errors.ts';
import { contentDisposition } from '../http/request.ts';
import { evaluateIf, parseIf, submittedTokens, type IfResource } from './if-header.ts';
import { child, children, DAV, emptyProp, errorBody, esc, innerXml, is, multistatus, nameOf, parseXml, propElement, propName, statusLine, type PropName } from './xml.ts';

/** Where WebDAV is mounted. */
export const DAV_PREFIX = '/dav';

const METHODS = ['OPTIONS', 'GET', 'HEAD', 'PUT', 'DELETE', 'MKCOL', 'COPY', 'MOVE', 'PROPFIND', 'PROPPATCH', 'LOCK', 'UNLOCK'];
const ALLOW = METHODS.join(', ');

/** Live properties (protected: PROPPATCH refuses them). */
const LIVE = ['resourcetype', 'getcontentlength', 'getlastmodified', 'creationdate', 'displayname', 'getetag', 'getcontenttype', 'supportedlock', 'lockdiscovery'].map((l) => propName(DAV, l));

const TYPES: Record<string, string> = {
  pdf: 'application/pdf',
  txt: 'text/plain',
  csv: 'text/csv',
  xml: 'application/xml',
  json: 'application/json',
  zip: 'application/zip',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  html: 'text/html',
  htm: 'text/html',
  doc: 'application/msword',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xls: 'application/vnd.ms-excel',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  pgp: 'application/pgp-encrypted',
};

/** A request path: the tree path and how to write it back as a URL. */
interface DavPath {
  tree: string;
  segments: string[];
}

function contentType(name: string): string {
  const ext = name.toLowerCase().split('.').pop() ?? '';
  return TYPES[ext] ?? 'application/octet-stream';
}

function etagOf(path: string, e: TreeEntry): string {
  if (e.kind === 'file' && e.id) return `"${e.id}"`;
  return `W/"${createHash('sha1').update(`${path}\n${e.mtime.getTime()}`).digest('hex').slice(0, 20)}"`;
}

function hrefOf(segments: string[], dir: boolean): string {
  // A lone surrogate would make encodeURIComponent throw: such a name is shown with U+FFFD.
  const path = segments.map((s) => encodeURIComponent(wellFormed(s))).join('/');
  return `${DAV_PREFIX}/${path}${dir && path ? '/' : ''}`;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/**
 * Whether HTTP Basic may be used on a connection: over TLS (or a trusted TLS proxy), on a
 * connection that arrived on a loopback address (it crossed no network), or where the
 * configuration allows it explicitly.
 */
export function basicAllowed(secure: boolean, localAddress: string | undefined, allowWithoutTls: boolean): boolean {
  const local = localAddress ?? '';
  const loopback = local.startsWith('127.') || local === '::1' || local.startsWith('::ffff:127.');
  return secure || loopback || allowWithoutTls;
}

/** A WebDAV answer that ends the request: status, optional body and headers. */
class DavResponse extends Error {
  constructor(
    readonly status: number,
    readonly body: string = '',
    readonly contentType = 'text/plain; charset=utf-8',
    readonly headers: Record<string, string> = {},
  ) {
    super(`WebDAV ${status}`);
  }
}

/** Mounts WebDAV at /dav/ on the Koa app (before the UI and the JSON API). */
export function mountWebdav(app: Koa, core: Core, config: Config, log: Logger): void {
  const handler = new WebdavHandler(core, config, log.child({ component: 'webdav' }));
  app.use(async (ctx, next) => {
    if (ctx.path !== DAV_PREFIX && !ctx.path.startsWith(`${DAV_PREFIX}/`)) return next();
    await handler.handle(ctx);
  });
}

class WebdavHandler {
  constructor(
    private readonly core: Core,
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  async handle(ctx: Context): Promise<void> {
    ctx.set('DAV', '1, 2');
    ctx.set('MS-Author-Via', 'DAV');
    // The JSON API's strict CSP and framing rules stay; a listing page needs nothing more.
    try {
      if (!this.config.webdav.enabled) throw fail('SEALDROP_E_DISABLED', 'WebDAV is switched off in the configuration');
      const method = ctx.method.toUpperCase();
      if (!METHODS.includes(method)) throw new DavResponse(405, 'method not allowed\n', undefined, { Allow: ALLOW });
      if (method === 'OPTIONS') {
        // Without credentials, on every path (Windows asks before it authenticates).
        ctx.set('Allow', ALLOW);
        ctx.status = 200;
        ctx.body = '';
        return;
      }
      // A fragment never belongs in a request; dropping it could act on the wrong resource.
      if ((ctx.req.url ?? '').includes('#')) throw fail('SEALDROP_E_VALIDATION', 'the request URL holds a fragment (#)');
      const path = this.requestPath(ctx.path);
      const p = await this.authenticate(ctx);
      await this.dispatch(ctx, method, p, path);
    } catch (err) {
      this.answerError(ctx, err);
    }
  }

  // ---------------------------------------------------------------- plumbing

  /** The tree path of a URL path under /dav (each segment percent-decoded and checked). */
  private requestPath(urlPath: string): DavPath {
    const raw = urlPath.slice(DAV_PREFIX.length);
    const segments: string[] = [];
    for (const part of raw.split('/')) {
      if (part === '') continue;
      let s: string;
      try {
        s = decodeURIComponent(part);
      } catch {
        throw fail('SEALDROP_E_VALIDATION', 'the path is not valid percent-encoded UTF-8');
      }
      if (s === '.' || s === '..' || s.includes('/') || s.includes('\\') || s.includes('\u0000')) throw fail('SEALDROP_E_INVALID_NAME', 'the path holds a name that is not allowed');
      segments.push(s);
    }
    return { tree: `/${segments.join('/')}`, segments };
  }

  private async authenticate(ctx: Context): Promise<Principal> {
    if (!basicAllowed(ctx.secure, ctx.req.socket.localAddress, this.config.webdav.allowBasicWithoutTls)) {
      throw new DavResponse(403, 'SEALDROP_E_FORBIDDEN: HTTP Basic over an unencrypted connection is refused; use TLS (or set webdav.allowBasicWithoutTls)\n');
    }
    const header = ctx.get('authorization');
    const m = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
    if (!m) throw fail('SEALDROP_E_UNAUTHENTICATED', 'log in with your e-mail address and your password or an API token');
    const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw fail('SEALDROP_E_UNAUTHENTICATED', 'malformed Basic credentials');
    try {
      const p = await this.core.accounts.verifyBasic(decoded.slice(0, colon), decoded.slice(colon + 1), ctx.request.ip, 'webdav');
      ctx.state.davAccount = p.email;
      return p;
    } catch (err) {
      if (isSealdropError(err, 'SEALDROP_E_LOGIN_FAILED') || isSealdropError(err, 'SEALDROP_E_ACCOUNT_DISABLED')) throw fail('SEALDROP_E_UNAUTHENTICATED', err.message);
      throw err;
    }
  }

  /** Reads a (small, XML) request body within the limit; PUT bodies never come here. */
  private async readBody(ctx: Context): Promise<Buffer> {
    const limit = this.config.webdav.maxXmlBytes;
    const declared = Number(ctx.get('content-length') || 0);
    if (declared > limit) throw fail('SEALDROP_E_TOO_LARGE', `request bodies are limited to ${limit} bytes`);
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of detachedBody(ctx.req)) {
      size += (chunk as Buffer).length;
      if (size > limit) throw fail('SEALDROP_E_TOO_LARGE', `request bodies are limited to ${limit} bytes`);
      parts.push(chunk as Buffer);
    }
    return Buffer.concat(parts);
  }

  private answerError(ctx: Context, err: unknown): void {
    if (err instanceof DavResponse) {
      ctx.status = err.status;
      for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
      ctx.type = err.contentType;
      ctx.body = err.body;
      return;
    }
    if (!isSealdropError(err)) {
      this.log.error({ err, code: 'SEALDROP_E_INTERNAL', method: ctx.method }, 'WebDAV request failed');
      ctx.state.errorCode = 'SEALDROP_E_INTERNAL';
      ctx.status = 500;
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = 'SEALDROP_E_INTERNAL: internal error; see the daemon log\n';
      return;
    }
    const status = this.statusOf(err);
    ctx.state.errorCode = err.code;
    if (status >= 500) this.log.error({ code: err.code, error: err.message, method: ctx.method }, 'WebDAV request failed');
    ctx.status = status;
    ctx.set('X-Sealdrop-Error', err.code);
    if (status === 401) ctx.set('WWW-Authenticate', 'Basic realm="sealdrop", charset="UTF-8"');
    if (err.code === 'SEALDROP_E_RATE_LIMITED' && typeof err.details?.retryAfter === 'number') ctx.set('Retry-After', String(err.details.retryAfter));
    if (status === 423) {
      const root = typeof err.details?.lockRoot === 'string' ? err.details.lockRoot : null;
      ctx.type = 'application/xml; charset=utf-8';
      ctx.body = root
        ? `<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:lock-token-submitted><D:href>${esc(hrefOf(root.split('/').filter(Boolean), false))}</D:href></D:lock-token-submitted></D:error>\n`
        : errorBody('lock-token-submitted');
      return;
    }
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = `${err.code}: ${err.message}\n`;
  }

  private statusOf(err: SealdropError): number {
    if (err.details?.parentMissing) return 409;
    switch (err.code) {
      case 'SEALDROP_E_UNAUTHENTICATED':
      case 'SEALDROP_E_LOGIN_FAILED':
        return 401;
      case 'SEALDROP_E_INVALID_EMAIL':
        return 404;
      case 'SEALDROP_E_LIMIT':
        return 507;
      case 'SEALDROP_E_ABORTED':
        return 400;
      default:
        return HTTP_STATUS[err.code];
    }
  }

  private async stat(p: Principal, path: string): Promise<TreeEntry | null> {
    try {
      return await this.core.tree.stat(p, path);
    } catch (err) {
      if (isSealdropError(err, 'SEALDROP_E_NOT_FOUND') || isSealdropError(err, 'SEALDROP_E_INVALID_EMAIL') || isSealdropError(err, 'SEALDROP_E_INVALID_NAME')) return null;
      throw err;
    }
  }

  /** The tree path a URL (absolute or a path) names, or null if it is not under /dav/. */
  private pathOfUrl(ctx: Context, url: string): { path: DavPath | null; otherHost: boolean } {
    let u: URL;
    try {
      u = new URL(url, `${ctx.protocol}://${ctx.host}`);
    } catch {
      throw fail('SEALDROP_E_VALIDATION', 'a URL in the request is malformed');
    }
    const otherHost = u.host !== ctx.host;
    if (u.pathname !== DAV_PREFIX && !u.pathname.startsWith(`${DAV_PREFIX}/`)) return { path: null, otherHost };
    return { path: this.requestPath(u.pathname), otherHost };
  }

  /**
   * The If header and the locks a change touches. The header is parsed first (400 if malformed).
   * `guard` then checks that every lock on the touched paths is submitted (423) and that the
   * header holds (412). When the header submits lock tokens the lock check comes first (a wrong
   * token on a locked resource is a 423); otherwise its entity tags are judged first (a stale
   * tag is a 412 even where a lock also stands).
   */
  private async conditions(ctx: Context, p: Principal, path: DavPath): Promise<{ tokens: Set<string>; guard: (touched?: Array<{ path: string; subtree?: boolean }>) => Promise<void> }> {
    const header = ctx.get('if');
    const lists = header ? parseIf(header) : [];
    const tokens = submittedTokens(lists);
    const holds = async () => {
      if (!header) return;
      const resource = async (tag: string | null): Promise<IfResource> => {
        const target = tag === null ? path : this.pathOfUrl(ctx, tag).path;
        if (!target) return { etag: null, lockTokens: new Set() };
        const e = await this.stat(p, target.tree);
        const locks = await this.core.dav.locksCovering(p, target.tree);
        return { etag: e ? etagOf(target.tree, e) : null, lockTokens: new Set(locks.map((l) => l.token)) };
      };
      if (!(await evaluateIf(lists, resource))) throw new DavResponse(412, 'the If header does not hold\n');
    };
    const guard = async (touched: Array<{ path: string; subtree?: boolean }> = []) => {
      const locks = async () => {
        for (const t of touched) await this.core.dav.assertUnlocked(p, t.path, tokens, t.subtree ?? false);
      };
      const lockFirst = [...tokens].some((t) => t.startsWith('opaquelocktoken:'));
      if (lockFirst) {
        await locks();
        await holds();
      } else {
        await holds();
        await locks();
      }
    };
    return { tokens, guard };
  }

  // ---------------------------------------------------------------- methods

  private async dispatch(ctx: Context, method: string, p: Principal, path: DavPath): Promise<void> {
    switch (method) {
      case 'GET':
      case 'HEAD':
        return this.get(ctx, p, path, method === 'HEAD');
      case 'PUT':
        return this.put(ctx, p, path);
      case 'DELETE':
        return this.delete(ctx, p, path);
      case 'MKCOL':
        return this.mkcol(ctx, p, path);
      case 'COPY':
      case 'MOVE':
        return this.copyMove(ctx, p, path, method === 'MOVE');
      case 'PROPFIND':
        return this.propfind(ctx, p, path);
      case 'PROPPATCH':
        return this.proppatch(ctx, p, path);
      case 'LOCK':
        return this.lock(ctx, p, path);
      case 'UNLOCK':
        return this.unlock(ctx, p, path);
    }
  }

  private async get(ctx: Context, p: Principal, path: DavPath, head: boolean): Promise<void> {
    const cond = await this.conditions(ctx, p, path);
    await cond.guard();
    const e = await this.core.tree.stat(p, path.tree);
    ctx.set('Last-Modified', e.mtime.toUTCString());
    ctx.set('ETag', etagOf(path.tree, e));
    if (e.kind === 'dir') {
      const entries = head ? [] : await this.core.tree.list(p, path.tree);
      ctx.type = 'text/html; charset=utf-8';
      ctx.status = 200;
      if (head) return;
      const rows = entries
        .map((x) => `<li><a href="${esc(hrefOf([...path.segments, x.name], x.kind === 'dir'))}">${esc(x.name)}${x.kind === 'dir' ? '/' : ''}</a>${x.kind === 'file' ? ` (${x.size} bytes)` : ''}</li>`)
        .join('\n');
      ctx.body = `<!doctype html>\n<html><head><meta charset="utf-8"><title>${esc(path.tree)}</title></head><body><h1>${esc(path.tree)}</h1><ul>\n${rows}\n</ul></body></html>\n`;
      return;
    }
    ctx.set('Accept-Ranges', 'bytes');
    // A browser saves the file instead of showing it: a delivered .html file would otherwise be
    // a page on this origin (a fake log-in form), whoever sent it. WebDAV clients ignore this.
    ctx.set('Content-Disposition', contentDisposition(e.name));
    if (head) {
      ctx.status = 200;
      ctx.type = contentType(e.name);
      ctx.length = e.size;
      return;
    }
    const dl = await this.core.tree.openRead(p, path.tree);
    const size = dl.size ?? e.size;
    const range = this.range(ctx.get('range'), size);
    ctx.type = dl.contentType === 'application/octet-stream' ? contentType(e.name) : dl.contentType;
    if (range === 'unsatisfiable') {
      dl.stream.destroy();
      throw new DavResponse(416, '', undefined, { 'Content-Range': `bytes */${size}` });
    }
    if (range) {
      ctx.status = 206;
      ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
      ctx.length = range.end - range.start + 1;
      ctx.body = dl.stream.pipe(slice(range.start, range.end));
      return;
    }
    ctx.status = 200;
    ctx.length = size;
    ctx.body = dl.stream;
  }

  /** One `bytes=a-b` range (others: the whole file). */
  private range(header: string, size: number): { start: number; end: number } | 'unsatisfiable' | null {
    const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
    if (!m || (m[1] === '' && m[2] === '')) return null;
    let start: number;
    let end: number;
    if (m[1] === '') {
      const n = Number(m[2]);
      if (n === 0) return 'unsatisfiable';
      start = Math.max(0, size - n);
      end = size - 1;
    } else {
      start = Number(m[1]);
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    }
    if (start >= size || end < start) return 'unsatisfiable';
    return { start, end };
  }

  private async put(ctx: Context, p: Principal, path: DavPath): Promise<void> {
    if (ctx.get('content-range')) throw fail('SEALDROP_E_VALIDATION', 'partial PUT (Content-Range) is not supported: send the whole file');
    const cond = await this.conditions(ctx, p, path);
    const existing = await this.stat(p, path.tree);
    if (existing?.kind === 'dir') throw new DavResponse(405, 'a folder of that name exists\n', undefined, { Allow: ALLOW });
    await cond.guard([{ path: path.tree }, ...(existing ? [] : [{ path: parentOf(path.tree) }])]);
    const length = ctx.get('content-length');
    const expected = ctx.get('x-expected-entity-length');
    const declared = /^\d{1,16}$/.test(length) ? Number(length) : /^\d{1,16}$/.test(expected) ? Number(expected) : undefined;
    const w = await this.core.tree.openWrite(p, path.tree, { readBack: true, mdcInWorker: false, ...(declared !== undefined ? { declaredSize: declared } : {}) });
    try {
      if (w.kind === 'upload') {
        await pipeline(detachedBody(ctx.req), w.upload.input);
        if (declared !== undefined && w.upload.bytes !== declared) throw fail('SEALDROP_E_ABORTED', `the body ended after ${w.upload.bytes} of ${declared} bytes`);
      } else {
        // The trigger file: its content is not kept.
        let seen = 0;
        await pipeline(
          detachedBody(ctx.req),
          new Writable({
            write(chunk: Buffer, _enc, cb) {
              seen += chunk.length;
              cb(seen > 1024 * 1024 ? fail('SEALDROP_E_TOO_LARGE', 'the trigger file is larger than 1 MiB') : null);
            },
          }),
        );
      }
    } catch (err) {
      await this.core.tree.abortWrite(p, w);
      throw isSealdropError(err) ? err : fail('SEALDROP_E_ABORTED', 'the upload was interrupted; nothing was stored');
    }
    await this.core.tree.closeWrite(p, w);
    ctx.set('ETag', etagOf(path.tree, (await this.stat(p, path.tree)) ?? ({ kind: 'dir', mtime: new Date(0) } as TreeEntry)));
    ctx.status = existing ? 204 : 201;
    ctx.body = '';
  }

  private async delete(ctx: Context, p: Principal, path: DavPath): Promise<void> {
    const depth = ctx.get('depth');
    if (depth && depth.toLowerCase() !== 'infinity') throw fail('SEALDROP_E_VALIDATION', 'DELETE takes Depth: infinity or none');
    const cond = await this.conditions(ctx, p, path);
    const e = await this.stat(p, path.tree);
    if (!e) throw fail('SEALDROP_E_NOT_FOUND', 'no such file or folder');
    await cond.guard([{ path: path.tree, subtree: true }, { path: parentOf(path.tree) }]);
    await this.core.tree.removeTree(p, path.tree);
    await this.core.dav.forget(p, path.tree);
    ctx.status = 204;
    ctx.body = '';
  }

  private async mkcol(ctx: Context, p: Principal, path: DavPath): Promise<void> {
    if (hasBody(ctx)) throw new DavResponse(415, 'MKCOL with a body is not supported\n');
    const cond = await this.conditions(ctx, p, path);
    if (await this.stat(p, path.tree)) throw new DavResponse(405, 'the name exists\n', undefined, { Allow: ALLOW });
    await cond.guard([{ path: parentOf(path.tree) }]);
    try {
      await this.core.tree.mkdir(p, path.tree);
    } catch (err) {
      if (isSealdropError(err, 'SEALDROP_E_CONFLICT')) throw new DavResponse(405, 'the name exists\n', undefined, { Allow: ALLOW });
      throw err;
    }
    ctx.status = 201;
    ctx.body = '';
  }

  private async copyMove(ctx: Context, p: Principal, from: DavPath, move: boolean): Promise<void> {
    const destHeader = ctx.get('destination');
    if (!destHeader) throw fail('SEALDROP_E_VALIDATION', 'a Destination header is required');
    const { path: to, otherHost } = this.pathOfUrl(ctx, destHeader);
    if (otherHost) throw new DavResponse(502, 'the destination is on another server\n');
    if (!to) throw fail('SEALDROP_E_FORBIDDEN', 'the destination is outside /dav/');
    const ow = (ctx.get('overwrite') || 'T').toUpperCase();
    if (ow !== 'T' && ow !== 'F') throw fail('SEALDROP_E_VALIDATION', 'Overwrite must be T or F');
    const depth = (ctx.get('depth') || 'infinity').toLowerCase();
    if (depth !== 'infinity' && (move || depth !== '0')) throw fail('SEALDROP_E_VALIDATION', move ? 'MOVE takes Depth: infinity' : 'COPY takes Depth: 0 or infinity');
    const cond = await this.conditions(ctx, p, from);
    const source = await this.stat(p, from.tree);
    if (!source) throw fail('SEALDROP_E_NOT_FOUND', 'no such file or folder');
    if (to.tree === from.tree) throw fail('SEALDROP_E_FORBIDDEN', 'the source and the destination are the same');
    const existing = await this.stat(p, to.tree);
    if (existing && ow === 'F') throw new DavResponse(412, 'the destination exists and Overwrite is F\n');
    await cond.guard([
      ...(move ? [{ path: from.tree, subtree: true }, { path: parentOf(from.tree) }] : []),
      { path: to.tree, subtree: true },
      ...(existing ? [] : [{ path: parentOf(to.tree) }]),
    ]);
    try {
      if (move) await this.core.tree.rename(p, from.tree, to.tree, true);
      else await this.core.tree.copy(p, from.tree, to.tree, true, depth === '0');
    } catch (err) {
      if (isSealdropError(err, 'SEALDROP_E_CONFLICT') && ow === 'F') throw new DavResponse(412, 'the destination exists and Overwrite is F\n');
      throw err;
    }
    await this.core.dav.relocate(p, from.tree, to.tree, !move);
    ctx.status = existing ? 204 : 201;
    ctx.body = '';
  }

  private async propfind(ctx: Context, p: Principal, path: DavPath): Promise<void> {
    const depth = (ctx.get('depth') || 'infinity').toLowerCase();
    if (depth !== '0' && depth !== '1') throw new DavResponse(403, errorBody('propfind-finite-depth'), 'application/xml; charset=utf-8');
    const root = parseXml(await this.readBody(ctx));
    let mode: 'allprop' | 'propname' | 'prop' = 'allprop';
    let wanted: PropName[] = [];
    if (root) {
      if (!is(root, DAV, 'propfind')) throw fail('SEALDROP_E_VALIDATION', 'the body must be a DAV:propfind element');
      const kids = children(root);
      const prop = kids.find((k) => is(k, DAV, 'prop'));
      if (kids.some((k) => is(k, DAV, 'propname'))) mode = 'propname';
      else if (prop) {
        mode = 'prop';
        wanted = children(prop).map(nameOf);
      } else if (!kids.some((k) => is(k, DAV, 'allprop'))) throw fail('SEALDROP_E_VALIDATION', 'DAV:propfind needs prop, propname or allprop');
      const include = kids.find((k) => is(k, DAV, 'include'));
      if (include) wanted = children(include).map(nameOf);
    }
    const cond = await this.conditions(ctx, p, path);
    await cond.guard();
    const self = await this.core.tree.stat(p, path.tree);
    const items: Array<{ segments: string[]; tree: string; e: TreeEntry }> = [{ segments: path.segments, tree: path.tree, e: self }];
    if (depth === '1' && self.kind === 'dir') {
      for (const c of await this.core.tree.list(p, path.tree)) items.push({ segments: [...path.segments, c.name], tree: `${path.tree === '/' ? '' : path.tree}/${c.name}`, e: c });
    }
    const trees = items.map((i) => i.tree);
    const [locks, dead] = await Promise.all([this.core.dav.locksCoveringEach(p, trees), this.core.dav.propertiesEach(p, trees)]);
    const responses = items.map((i) => {
      const live = this.liveProps(i.segments, i.tree, i.e, locks.get(i.tree) ?? []);
      const deadProps = new Map((dead.get(i.tree) ?? []).map((d) => [d.name, d.value]));
      const found: string[] = [];
      const missing: string[] = [];
      if (mode === 'propname') {
        for (const n of [...live.keys(), ...deadProps.keys()]) found.push(emptyProp(n));
      } else {
        const names = mode === 'allprop' ? [...live.keys(), ...deadProps.keys(), ...wanted] : wanted;
        for (const n of new Set(names)) {
          const v = live.get(n) ?? deadProps.get(n);
          if (v === undefined) missing.push(emptyProp(n));
          else found.push(propElement(n, v));
        }
      }
      const stats = [found.length || (!missing.length && mode !== 'prop') ? `<D:propstat><D:prop>${found.join('')}</D:prop><D:status>${statusLine(200)}</D:status></D:propstat>` : '', missing.length ? `<D:propstat><D:prop>${missing.join('')}</D:prop><D:status>${statusLine(404)}</D:status></D:propstat>` : ''];
      return `<D:response><D:href>${esc(hrefOf(i.segments, i.e.kind === 'dir'))}</D:href>${stats.join('')}</D:response>`;
    });
    ctx.status = 207;
    ctx.type = 'application/xml; charset=utf-8';
    ctx.body = multistatus(responses);
  }

  /** The live properties of a resource, as inner XML by name. */
  private liveProps(segments: string[], tree: string, e: TreeEntry, locks: LockInfo[]): Map<PropName, string> {
    const m = new Map<PropName, string>();
    const dir = e.kind === 'dir';
    m.set(propName(DAV, 'resourcetype'), dir ? '<D:collection/>' : '');
    if (!dir) {
      m.set(propName(DAV, 'getcontentlength'), String(e.size));
      m.set(propName(DAV, 'getcontenttype'), contentType(e.name));
    }
    m.set(propName(DAV, 'getlastmodified'), e.mtime.toUTCString());
    m.set(propName(DAV, 'creationdate'), e.mtime.toISOString());
    m.set(propName(DAV, 'displayname'), esc(segments.at(-1) ?? ''));
    m.set(propName(DAV, 'getetag'), esc(etagOf(tree, e)));
    m.set(propName(DAV, 'supportedlock'), '<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry><D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>');
    m.set(propName(DAV, 'lockdiscovery'), locks.map((l) => this.activeLock(l)).join(''));
    return m;
  }

  private activeLock(l: LockInfo): string {
    const left = Math.max(0, Math.ceil((l.expiresAt.getTime() - this.core.deps.clock.now().getTime()) / 1000));
    return (
      `<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:${l.scope}/></D:lockscope>` +
      `<D:depth>${l.depth === 0 ? '0' : 'infinity'}</D:depth>${l.owner !== null ? `<D:owner>${l.owner}</D:owner>` : ''}` +
      `<D:timeout>Second-${left}</D:timeout><D:locktoken><D:href>${esc(l.token)}</D:href></D:locktoken>` +
      `<D:lockroot><D:href>${esc(hrefOf(l.path.split('/').filter(Boolean), false))}</D:href></D:lockroot></D:activelock>`
    );
  }

  private async proppatch(ctx: Context, p: Principal, path: DavPath): Promise<void> {
    const root = parseXml(await this.readBody(ctx));
    if (!root || !is(root, DAV, 'propertyupdate')) throw fail('SEALDROP_E_VALIDATION', 'the body must be a DAV:propertyupdate element');
    const ops: PropPatch[] = [];
    for (const k of children(root)) {
      const set = is(k, DAV, 'set');
      if (!set && !is(k, DAV, 'remove')) throw fail('SEALDROP_E_VALIDATION', 'DAV:propertyupdate holds only set and remove');
      const prop = child(k, DAV, 'prop');
      if (!prop) throw fail('SEALDROP_E_VALIDATION', `DAV:${set ? 'set' : 'remove'} needs a DAV:prop`);
      for (const el of children(prop)) ops.push(set ? { op: 'set', name: nameOf(el), value: innerXml(el) } : { op: 'remove', name: nameOf(el) });
    }
    const cond = await this.conditions(ctx, p, path);
    if (!(await this.stat(p, path.tree))) throw fail('SEALDROP_E_NOT_FOUND', 'no such file or folder');
    await cond.guard([{ path: path.tree }]);
    const isProtected = (n: PropName) => LIVE.includes(n);
    let statuses: Array<[PropName, number]>;
    if (ops.some((o) => isProtected(o.name))) {
      statuses = ops.map((o) => [o.name, isProtected(o.name) ? 403 : 424]);
    } else {
      await this.core.dav.patch(p, path.tree, ops);
      statuses = ops.map((o) => [o.name, 200]);
    }
    const byStatus = new Map<number, PropName[]>();
    for (const [n, st] of statuses) byStatus.set(st, [...(byStatus.get(st) ?? []), n]);
    const propstats = [...byStatus].map(([st, names]) => `<D:propstat><D:prop>${[...new Set(names)].map(emptyProp).join('')}</D:prop><D:status>${statusLine(st)}</D:status></D:propstat>`);
    ctx.status = 207;
    ctx.type = 'application/xml; charset=utf-8';
    ctx.body = multistatus([`<D:response><D:href>${esc(hrefOf(path.segments, false))}</D:href>${propstats.join('')}</D:response>`]);
  }

  private timeout(ctx: Context): number {
    const max = this.config.webdav.maxLockSeconds;
    for (const part of ctx.get('timeout').split(',')) {
      const t = part.trim();
      const m = /^Second-(\d{1,10})$/i.exec(t);
      if (m) return Math.min(Number(m[1]), max);
      if (/^Infinite$/i.test(t)) return max;
    }
    return max;
  }

  private async lock(ctx: Context, p: Principal, path: DavPath): Promise<void> {
    const root = parseXml(await this.readBody(ctx));
    const cond = await this.conditions(ctx, p, path);
    if (!root) {
      // A refresh: the If header names the lock.
      if (cond.tokens.size === 0) throw fail('SEALDROP_E_VALIDATION', 'a LOCK without a body refreshes a lock named in the If header');
      await cond.guard();
      let refreshed: LockInfo | undefined;
      for (const token of cond.tokens) {
        try {
          refreshed = await this.core.dav.refresh(p, path.tree, token, this.timeout(ctx));
          break;
        } catch (err) {
          if (!isSealdropError(err, 'SEALDROP_E_WRONG_STATE')) throw err;
        }
      }
      if (!refreshed) throw new DavResponse(412, errorBody('lock-token-matches-request-uri'), 'application/xml; charset=utf-8');
      ctx.status = 200;
      ctx.type = 'application/xml; charset=utf-8';
      ctx.body = `<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:"><D:lockdiscovery>${this.activeLock(refreshed)}</D:lockdiscovery></D:prop>\n`;
      return;
    }
    if (!is(root, DAV, 'lockinfo')) throw fail('SEALDROP_E_VALIDATION', 'the body must be a DAV:lockinfo element');
    const scopeEl = child(root, DAV, 'lockscope');
    const scope = scopeEl && child(scopeEl, DAV, 'shared') ? 'shared' : scopeEl && child(scopeEl, DAV, 'exclusive') ? 'exclusive' : null;
    const typeEl = child(root, DAV, 'locktype');
    if (!scope || !typeEl || !child(typeEl, DAV, 'write')) throw fail('SEALDROP_E_VALIDATION', 'a lock needs a lockscope (exclusive or shared) and locktype write');
    const ownerEl = child(root, DAV, 'owner');
    const depthHeader = (ctx.get('depth') || 'infinity').toLowerCase();
    if (depthHeader !== '0' && depthHeader !== 'infinity') throw fail('SEALDROP_E_VALIDATION', 'LOCK takes Depth: 0 or infinity');
    const existing = await this.stat(p, path.tree);
    await cond.guard(existing ? [] : [{ path: parentOf(path.tree) }]);
    const info = await this.core.dav.lock(p, path.tree, { scope, depth: depthHeader === '0' || existing?.kind === 'file' ? 0 : -1, owner: ownerEl ? innerXml(ownerEl) : null, timeoutSeconds: this.timeout(ctx) });
    let created = false;
    if (!existing) {
      // A lock on a new name makes an empty placeholder (never delivered unless written).
      try {
        const w = await this.core.tree.openWrite(p, path.tree, { placeholder: true });
        await this.core.tree.closeWrite(p, w);
        created = true;
      } catch (err) {
        await this.core.dav.unlock(p, path.tree, info.token).catch(() => undefined);
        throw err;
      }
    }
    ctx.set('Lock-Token', `<${info.token}>`);
    ctx.status = created ? 201 : 200;
    ctx.type = 'application/xml; charset=utf-8';
    ctx.body = `<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:"><D:lockdiscovery>${this.activeLock(info)}</D:lockdiscovery></D:prop>\n`;
  }

  private async unlock(ctx: Context, p: Principal, path: DavPath): Promise<void> {
    const m = /^<([^<>\s]+)>$/.exec(ctx.get('lock-token').trim());
    if (!m) throw fail('SEALDROP_E_VALIDATION', 'UNLOCK needs a Lock-Token header: <opaquelocktoken:…>');
    try {
      await this.core.dav.unlock(p, path.tree, m[1] as string);
    } catch (err) {
      if (isSealdropError(err, 'SEALDROP_E_CONFLICT')) throw new DavResponse(409, errorBody('lock-token-matches-request-uri'), 'application/xml; charset=utf-8');
      throw err;
    }
    ctx.status = 204;
    ctx.body = '';
  }
}

/** Passes bytes `start..end` (inclusive) of a stream. */
function slice(start: number, end: number): Transform {
  let pos = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const from = Math.max(0, start - pos);
      const to = Math.min(chunk.length, end + 1 - pos);
      pos += chunk.length;
      cb(null, to > from ? chunk.subarray(from, to) : undefined);
    },
  });
}

