/**
 * The OpenAPI document of /api/v1 against the server: the document itself (OpenAPI 3.1, every
 * $ref resolves, every schema compiles with ajv's 2020-12 dialect in strict mode), the routes
 * registered in the Koa routers against its paths (both ways), and a real daemon driven through
 * every route — each answer must have a documented status and match the documented schema.
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pkg from '../../package.json' with { type: 'json' };
import type { Config } from '../src/config/schema.ts';
import type { Core } from '../src/core/index.ts';
import { ERROR_CODES } from '../src/core/errors.ts';
import { HTTP_STATUS } from '../src/protocols/http/errors.ts';
import { apiRouter } from '../src/protocols/http/api.ts';
import {
  HTTP_METHODS,
  openApiDocument,
  type HttpMethod,
  type OperationObject,
  type ParameterObject,
  type ReferenceObject,
  type ResponseObject,
} from '../src/protocols/http/openapi.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';
import { clientWraps } from './support/release.ts';
import { linkIn, SmtpCatcher } from './support/smtp.ts';

/** The document as a client receives it (plain JSON). */
const doc = JSON.parse(JSON.stringify(openApiDocument)) as typeof openApiDocument;
const DOC_ID = 'urn:sealdrop:openapi';

// ---------------------------------------------------------------- the document as a JSON Schema container

/** A JSON pointer fragment (`#/a/b~1c`) as ajv reads it. */
function pointer(...parts: string[]): string {
  return `#${parts.map((p) => `/${encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1'))}`).join('')}`;
}

/** Follows a local `#/...` reference inside the document; undefined if it does not resolve. */
function resolvePointer(ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(part in node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** A component or inline object, with its own pointer (for ajv). */
function deref<T>(value: T | ReferenceObject, at: string): { value: T; at: string } {
  if (value && typeof value === 'object' && '$ref' in value) {
    const target = resolvePointer(value.$ref);
    if (target === undefined) throw new Error(`unresolved $ref ${value.$ref} at ${at}`);
    return { value: target as T, at: value.$ref };
  }
  return { value, at };
}

const ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
addFormats.default(ajv);
// The document is the root that holds the schemas; its own members are no JSON Schema keywords.
ajv.addVocabulary(['openapi', 'jsonSchemaDialect', 'info', 'servers', 'tags', 'security', 'paths', 'components']);
ajv.addSchema(doc as unknown as Record<string, unknown>, DOC_ID);

/** The compiled schema at `at` (a pointer into the document). */
function validatorAt(at: string): ValidateFunction {
  const validate = ajv.getSchema(`${DOC_ID}${at}`);
  if (!validate) throw new Error(`no schema at ${at}`);
  return validate;
}

function check(validate: ValidateFunction, data: unknown, what: string): void {
  const ok = validate(data);
  expect(ok, `${what}: ${ajv.errorsText(validate.errors, { separator: '\n  ' })}\n${JSON.stringify(data, null, 1)?.slice(0, 4000)}`).toBe(true);
}

interface OperationRef {
  path: string;
  method: HttpMethod;
  op: OperationObject;
  at: string;
}

function operations(): OperationRef[] {
  const out: OperationRef[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of HTTP_METHODS) {
      const op = item[method];
      if (op) out.push({ path, method, op, at: pointer('paths', path, method) });
    }
  }
  return out;
}

/** Every place of the document that holds a schema, with its pointer. */
function schemaLocations(): string[] {
  const out = Object.keys(doc.components.schemas).map((name) => pointer('components', 'schemas', name));
  for (const name of Object.keys(doc.components.parameters)) out.push(`${pointer('components', 'parameters', name)}/schema`);
  for (const [name, r] of Object.entries(doc.components.responses)) {
    for (const type of Object.keys(r.content ?? {})) if (r.content?.[type]?.schema) out.push(pointer('components', 'responses', name, 'content', type, 'schema'));
    for (const header of Object.keys(r.headers ?? {})) out.push(pointer('components', 'responses', name, 'headers', header, 'schema'));
  }
  for (const { path, method, op } of operations()) {
    (op.parameters ?? []).forEach((p, i) => {
      if (!('$ref' in p)) out.push(pointer('paths', path, method, 'parameters', String(i), 'schema'));
    });
    for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) if (media.schema) out.push(pointer('paths', path, method, 'requestBody', 'content', type, 'schema'));
    for (const [status, r] of Object.entries(op.responses)) {
      if ('$ref' in r) continue;
      for (const [type, media] of Object.entries(r.content ?? {})) if (media.schema) out.push(pointer('paths', path, method, 'responses', status, 'content', type, 'schema'));
      for (const header of Object.keys(r.headers ?? {})) out.push(pointer('paths', path, method, 'responses', status, 'headers', header, 'schema'));
    }
  }
  return out;
}

describe('the OpenAPI document', () => {
  it('is OpenAPI 3.1 with the package version and a bearer security scheme', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info.title).toBeTruthy();
    expect(doc.info.version).toBe(pkg.version);
    expect(doc.jsonSchemaDialect).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(doc.servers.map((s) => s.url)).toEqual(['/api/v1']);
    for (const scheme of Object.values(doc.components.securitySchemes)) expect(scheme).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.schemas.ErrorCode?.enum).toEqual(Object.keys(ERROR_CODES));
    // Each error code is in exactly one error response, and operations use that response under
    // the status the server answers the code with (errors.ts), never under another.
    const codesOf = (r: ResponseObject) => ((r.content?.['application/json']?.schema?.properties as { error?: { properties?: { code?: { enum?: string[] } } } })?.error?.properties?.code?.enum ?? []);
    const usedAs = new Map<string, Set<string>>();
    for (const { op } of operations()) {
      for (const [status, r] of Object.entries(op.responses)) if ('$ref' in r) usedAs.set(r.$ref, (usedAs.get(r.$ref) ?? new Set()).add(status));
    }
    for (const [code, status] of Object.entries(HTTP_STATUS)) {
      const holders = Object.entries(doc.components.responses).filter(([, r]) => codesOf(r).includes(code));
      expect(holders.map(([name]) => name), code).toHaveLength(1);
      expect([...(usedAs.get(`#/components/responses/${holders[0]?.[0]}`) ?? [String(status)])], code).toEqual([String(status)]);
    }
  });

  it('has well-formed operations', () => {
    const ids = new Set<string>();
    const tags = new Set(doc.tags.map((t) => t.name));
    for (const { path, method, op } of operations()) {
      const where = `${method.toUpperCase()} ${path}`;
      expect(path, where).toMatch(/^\/[a-z0-9\-./{}]*$/i);
      expect(ids.has(op.operationId), `${where}: operationId ${op.operationId} is used twice`).toBe(false);
      ids.add(op.operationId);
      expect(op.summary, where).toBeTruthy();
      for (const tag of op.tags) expect(tags.has(tag), `${where}: undeclared tag ${tag}`).toBe(true);
      // Responses: at least one success, each with a description; error bodies are the Error schema.
      const statuses = Object.keys(op.responses);
      expect(statuses.length, where).toBeGreaterThan(0);
      expect(statuses.some((s) => /^2\d\d$/.test(s)), `${where}: no success response`).toBe(true);
      for (const status of statuses) {
        expect(status, where).toMatch(/^[1-5]\d\d$/);
        const r = deref<ResponseObject>(op.responses[status] as ResponseObject | ReferenceObject, where).value;
        expect(r.description, `${where} ${status}`).toBeTruthy();
        if (Number(status) >= 400) expect(r.content?.['application/json']?.schema?.$ref, `${where} ${status}`).toBe('#/components/schemas/Error');
        if (status === '204') expect(r.content, `${where} 204 has no body`).toBeUndefined();
      }
      // Security: the schemes exist; public operations are exactly the routes before bearerAuth.
      for (const req of op.security) for (const scheme of Object.keys(req)) expect(doc.components.securitySchemes, `${where}: scheme ${scheme}`).toHaveProperty(scheme);
      if (op.security.length > 0) expect(op.responses['401'], `${where}: authenticated operations document 401`).toBeDefined();
      // Path parameters: exactly the names in the template, each required.
      const params = (op.parameters ?? []).map((p) => deref<ParameterObject>(p, where).value);
      const inPath = params.filter((p) => p.in === 'path');
      expect(inPath.map((p) => p.name).sort(), `${where}: path parameters`).toEqual([...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort());
      for (const p of inPath) expect(p.required, `${where}: ${p.name}`).toBe(true);
      // JSON request bodies are objects (readJson refuses anything else).
      const body = op.requestBody?.content['application/json']?.schema;
      if (body) expect(body.type === 'object' || Array.isArray(body.oneOf), `${where}: request body`).toBe(true);
    }
  });

  it('resolves every $ref', () => {
    const refs: string[] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (k === '$ref' && typeof v === 'string') refs.push(v);
          else walk(v);
        }
      }
    };
    walk(doc);
    expect(refs.length).toBeGreaterThan(50);
    expect(refs.filter((r) => resolvePointer(r) === undefined)).toEqual([]);
    // Every component is used.
    const used = new Set(refs);
    for (const kind of ['schemas', 'responses', 'parameters'] as const) {
      for (const name of Object.keys(doc.components[kind])) {
        if (kind === 'responses' && ['Locked', 'Unavailable'].includes(name)) continue; // for completeness of the code list
        expect(used.has(`#/components/${kind}/${name}`), `#/components/${kind}/${name} is unused`).toBe(true);
      }
    }
  });

  it('compiles every schema with ajv (JSON Schema 2020-12, strict mode)', () => {
    const locations = schemaLocations();
    expect(locations.length).toBeGreaterThan(100);
    for (const at of locations) expect(() => validatorAt(at), at).not.toThrow();
  });

  it('describes exactly the routes registered in the Koa routers', () => {
    const router = apiRouter({ core: {} as Core, config: { http: { maxJsonBytes: 1024 } } as Config });
    const registered: string[] = [];
    let fallback = 0;
    for (const layer of router.stack) {
      if (layer.methods.length === 0) continue; // middleware (bearer auth, nested routers, the admin scope check)
      if (layer.path === '/api/v1/{*rest}') {
        fallback++; // the catch-all 404 for unknown API routes
        continue;
      }
      const full = String(layer.path);
      expect(full.startsWith('/api/v1/'), full).toBe(true);
      const path = full.slice('/api/v1'.length).replace(/:(\w+)/g, '{$1}');
      for (const m of layer.methods) if (m !== 'HEAD') registered.push(`${m.toLowerCase()} ${path}`);
    }
    expect(fallback).toBe(1);
    const documented = operations().map(({ method, path }) => `${method} ${path}`);
    // OpenAPI forbids two templates that differ only in parameter names, so the upload route
    // (`:name`) shares `/deliveries/{id}/files/{fileId}` with download and delete (`:fileId`).
    const anyName = (s: string) => s.replace(/\{[^}]+\}/g, '{}');
    expect([...new Set(registered.map(anyName))].sort()).toEqual([...new Set(documented.map(anyName))].sort());
    expect(registered.length).toBe(new Set(registered).size);
    expect(registered.filter((r) => !documented.includes(r))).toEqual(['put /deliveries/{id}/files/{name}']);
  });
});

// ---------------------------------------------------------------- against a real daemon

/** What a request sends; `params` fill the template, `json` goes as a JSON body, `body` raw. */
interface Send {
  params?: Record<string, string>;
  query?: Record<string, string>;
  json?: unknown;
  body?: Uint8Array | string;
  contentType?: string;
  headers?: Record<string, string>;
}

/** A response. */
interface Reply<T> {
  status: number;
  body: T;
  raw: Buffer;
  headers: Headers;
}

/** Every call made: operation and status. */
const seen: Array<{ op: string; status: number }> = [];

class Client {
  constructor(
    readonly base: string,
    readonly token?: string,
  ) {}

  as(token: string): Client {
    return new Client(this.base, token);
  }

  /** Sends a request to a documented operation and checks the answer against the document. */
  async req<T = Record<string, unknown>>(method: HttpMethod, template: string, send: Send = {}): Promise<Reply<T>> {
    const op = doc.paths[template]?.[method];
    if (!op) throw new Error(`${method.toUpperCase()} ${template} is not in the document`);
    const where = `${method.toUpperCase()} ${template}`;
    const path = template.replace(/\{([^}]+)\}/g, (_, name: string) => {
      const value = send.params?.[name];
      if (value === undefined) throw new Error(`${where}: no value for {${name}}`);
      return encodeURIComponent(value);
    });
    const query = send.query ? `?${new URLSearchParams(send.query).toString()}` : '';
    const headers: Record<string, string> = { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...send.headers };
    let body: BodyInit | undefined;
    if (send.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(send.json);
    } else if (send.body !== undefined) {
      if (send.contentType) headers['content-type'] = send.contentType;
      body = send.body as BodyInit;
    }
    const res = await fetch(`${this.base}/api/v1${path}${query}`, { method: method.toUpperCase(), headers, body });
    const raw = Buffer.from(await res.arrayBuffer());
    seen.push({ op: `${method} ${template}`, status: res.status });

    // The status is documented, never a server error.
    expect(res.status, `${where}: ${raw.toString().slice(0, 500)}`).toBeLessThan(500);
    const documented = op.responses[String(res.status)];
    expect(documented, `${where} answered ${res.status}, which is not documented: ${raw.toString().slice(0, 500)}`).toBeDefined();
    const { value: response, at } = deref<ResponseObject>(documented as ResponseObject | ReferenceObject, `${pointer('paths', template, method, 'responses', String(res.status))}`);
    const type = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    let parsed: unknown = raw.toString('utf8');
    if (!response.content) {
      expect(raw.length, `${where} ${res.status}: no body documented`).toBe(0);
    } else {
      expect(Object.keys(response.content), `${where} ${res.status}: content type`).toContain(type);
      if (type === 'application/json') {
        parsed = JSON.parse(raw.toString('utf8'));
        check(validatorAt(`${at}/content/${encodeURIComponent('application~1json')}/schema`), parsed, `${where} ${res.status} response`);
      }
    }
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      const value = res.headers.get(name);
      if (header.required) expect(value, `${where} ${res.status}: header ${name}`).not.toBeNull();
      if (value !== null) check(validatorAt(`${at}/headers/${encodeURIComponent(name)}/schema`), header.schema.type === 'integer' ? Number(value) : value, `${where} ${res.status} header ${name}`);
    }
    // What a successful call sent must satisfy the documented request.
    if (res.status < 300) {
      const opAt = pointer('paths', template, method);
      if (send.json !== undefined) check(validatorAt(`${opAt}/requestBody/content/${encodeURIComponent('application~1json')}/schema`), send.json, `${where} request body`);
      else if (send.body !== undefined) expect(Object.keys(op.requestBody?.content ?? {}), `${where}: request content type`).toContain(send.contentType ?? 'application/octet-stream');
      else expect(op.requestBody?.required ?? false, `${where}: the request body is required`).toBe(false);
      (op.parameters ?? []).forEach((p, i) => {
        const { value: param, at: pAt } = deref<ParameterObject>(p, `${opAt}/parameters/${i}`);
        if (param.in === 'path') check(validatorAt(`${pAt}/schema`), send.params?.[param.name], `${where} parameter ${param.name}`);
        if (param.in === 'query' && param.required) expect(send.query?.[param.name], `${where}: query ${param.name}`).toBeDefined();
      });
    }
    return { status: res.status, body: parsed as T, raw, headers: res.headers };
  }

  /** A call that must succeed with `status`; returns the body. */
  async ok<T = Record<string, unknown>>(method: HttpMethod, template: string, send: Send = {}, status = 200): Promise<T> {
    const r = await this.req<T>(method, template, send);
    expect(r.status, `${method.toUpperCase()} ${template} -> ${r.raw.toString().slice(0, 500)}`).toBe(status);
    return r.body;
  }

  /** A call that must fail with `status` and `code`. */
  async fails(method: HttpMethod, template: string, send: Send, status: number, code: string): Promise<void> {
    const r = await this.req<{ error: { code: string } }>(method, template, send);
    expect({ status: r.status, code: r.body.error?.code }, `${method.toUpperCase()} ${template} -> ${r.raw.toString().slice(0, 500)}`).toEqual({ status, code });
  }
}

/** An OpenSSH ed25519 public key line. */
function sshKeyLine(comment: string): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  const str = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  return `ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]).toString('base64')} ${comment}`;
}

/** A binary OpenPGP message (PKESKs + SEIPDv1) to the given armored public keys. */
async function encryptTo(keys: Array<{ publicKey: string }>, data: Buffer): Promise<Buffer> {
  const encryptionKeys = await Promise.all(keys.map((k) => openpgp.readKey({ armoredKey: k.publicKey })));
  return Buffer.from((await openpgp.encrypt({ message: await openpgp.createMessage({ binary: data }), encryptionKeys, format: 'binary' })) as Uint8Array);
}

interface DeliveryJson {
  id: string;
  state: string;
  files: Array<{ id: string; name: string }>;
  recipients: Array<{ id: string; email: string; state: string }>;
}
type Wrapped<K extends string, T> = { [key in K]: T };

describe('every route of a real daemon answers as documented', () => {
  const tag = randomBytes(4).toString('hex');
  const pw = (who: string) => `${who.split('@')[0]}-password-${tag}`;
  const sp = (who: string) => `${who.toUpperCase()}-SECUPASS-${tag}`;
  const ADMIN = 'admin@example.org';
  const ALICE = 'alice@example.org';
  const BOB = 'bob@example.org';
  const CAROL = 'carol@example.org';
  const ROBOT = 'robot@example.org';
  let smtp: SmtpCatcher;
  let sb: Sandbox;
  let daemon: DaemonProcess;
  let anon: Client;

  beforeAll(async () => {
    smtp = await new SmtpCatcher().start();
    sb = sandbox({ SEALDROP_ACCOUNTS__LOGIN_MAX_FAILURES: '3', SEALDROP_HTTP__MAX_JSON_BYTES: '16384', SEALDROP_SFTP__ENABLED: 'false' }, smtp.port);
    const r = await runCli(sb, ['account', 'add', '--email', ADMIN, '--role', 'admin', '--password-stdin'], `${pw('admin')}\n`);
    expect(r, r.stderr).toMatchObject({ code: 0 });
    daemon = await startDaemonProcess(sb);
    anon = new Client(daemon.url);
  });

  afterAll(async () => {
    const code = await daemon?.stop();
    await smtp?.stop();
    sb?.remove();
    expect(code).toBe(0);
  });

  const login = async (email: string, password: string): Promise<Client> => anon.as((await anon.ok<{ token: string }>('post', '/session', { json: { email, password } }, 201)).token);

  it('drives the whole API', async () => {
    // This document, served.
    expect(await anon.ok('get', '/openapi.json')).toEqual(doc);

    // Sessions; the login limit.
    await anon.fails('post', '/session', { json: { email: ADMIN, password: 'not the password' } }, 401, 'SEALDROP_E_LOGIN_FAILED');
    await anon.fails('post', '/session', { body: 'email=x', contentType: 'application/x-www-form-urlencoded' }, 400, 'SEALDROP_E_VALIDATION');
    await anon.fails('post', '/session', { json: { email: ADMIN, password: 'x'.repeat(20_000) } }, 413, 'SEALDROP_E_TOO_LARGE');
    for (let i = 0; i < 3; i++) await anon.fails('post', '/session', { json: { email: 'ghost@example.org', password: 'guess guess' } }, 401, 'SEALDROP_E_LOGIN_FAILED');
    const limited = await anon.req('post', '/session', { json: { email: 'ghost@example.org', password: 'guess guess' } });
    expect([limited.status, Number(limited.headers.get('retry-after')) > 0]).toEqual([429, true]);
    const admin = await login(ADMIN, pw('admin'));
    await anon.fails('get', '/me', {}, 401, 'SEALDROP_E_UNAUTHENTICATED');
    expect((await admin.ok<Wrapped<'account', { role: string }>>('get', '/me')).account.role).toBe('admin');

    // Accounts (admin).
    for (const email of [ALICE, BOB]) await admin.ok('post', '/admin/accounts', { json: { email, role: 'member', password: pw(email) } }, 201);
    await admin.fails('post', '/admin/accounts', { json: { email: BOB, password: pw(BOB) } }, 409, 'SEALDROP_E_CONFLICT');
    await admin.fails('post', '/admin/accounts', { json: { email: 'x@example.org', role: 'king' } }, 400, 'SEALDROP_E_VALIDATION');
    await admin.ok('post', '/admin/accounts', { json: { email: ROBOT, role: 'service', owner: ALICE, password: pw(ROBOT) } }, 201);
    expect((await admin.ok<{ invited: boolean }>('post', '/admin/accounts', { json: { email: CAROL } }, 201)).invited).toBe(true);
    const accounts = await admin.ok<Wrapped<'accounts', Array<{ email: string; owner: string | null }>>>('get', '/admin/accounts');
    expect(accounts.accounts.find((a) => a.email === ROBOT)?.owner).toBe(ALICE);

    // Registration from the invitation.
    const invitation = await smtp.waitFor(CAROL, 'invitation');
    const regToken = linkIn(invitation, 'http://127.0.0.1:8080/register').searchParams.get('token') as string;
    await anon.fails('post', '/registration', { json: { token: regToken, password: 'short' } }, 400, 'SEALDROP_E_PASSWORD_POLICY');
    await anon.ok('post', '/registration', { json: { token: regToken, password: pw(CAROL) } }, 201);
    await anon.fails('post', '/registration', { json: { token: regToken, password: pw(CAROL) } }, 400, 'SEALDROP_E_TOKEN_INVALID');

    // Disable and enable.
    await admin.ok('post', '/admin/accounts/{email}/disable', { params: { email: CAROL } });
    await anon.fails('post', '/session', { json: { email: CAROL, password: pw(CAROL) } }, 403, 'SEALDROP_E_ACCOUNT_DISABLED');
    await admin.ok('post', '/admin/accounts/{email}/enable', { params: { email: CAROL } });
    await admin.fails('post', '/admin/accounts/{email}/disable', { params: { email: 'nobody@example.org' } }, 404, 'SEALDROP_E_NOT_FOUND');
    const alice = await login(ALICE, pw(ALICE));
    const bob = await login(BOB, pw(BOB));
    const carol = await login(CAROL, pw(CAROL));
    const robot = await login(ROBOT, pw(ROBOT));
    await alice.fails('get', '/admin/accounts', {}, 403, 'SEALDROP_E_SCOPE');

    // Password change.
    await alice.fails('post', '/password', { json: { currentPassword: 'not my password', newPassword: pw('alice2') } }, 401, 'SEALDROP_E_LOGIN_FAILED');
    await alice.ok('post', '/password', { json: { currentPassword: pw(ALICE), newPassword: pw('alice2') } }, 204);

    // API tokens.
    const created = await alice.ok<{ token: string }>('post', '/tokens', { json: { name: 'cron', scopes: ['send', 'release', 'fetch'], expiresInDays: 1 } }, 201);
    const cron = anon.as(created.token);
    await cron.fails('post', '/tokens', { json: { scopes: ['send'] } }, 403, 'SEALDROP_E_FORBIDDEN');
    await alice.fails('post', '/tokens', { json: { scopes: ['admin'] } }, 403, 'SEALDROP_E_FORBIDDEN');
    await alice.fails('post', '/tokens', { json: { scopes: [] } }, 400, 'SEALDROP_E_VALIDATION');
    const spare = await alice.ok<{ id: string; token: string }>('post', '/tokens', { json: { scopes: ['fetch'] } }, 201);
    expect((await alice.ok<Wrapped<'tokens', unknown[]>>('get', '/tokens')).tokens).toHaveLength(2);
    await alice.ok('delete', '/tokens/{id}', { params: { id: spare.id } }, 204);
    await alice.fails('delete', '/tokens/{id}', { params: { id: randomUUID() } }, 404, 'SEALDROP_E_NOT_FOUND');
    await anon.as(spare.token).fails('get', '/me', {}, 401, 'SEALDROP_E_UNAUTHENTICATED');

    // SecuPass: server-side (alice, carol later), client-made (bob), none for service accounts.
    await alice.ok('post', '/secupass', { json: { secupass: sp('alice') } }, 201);
    await alice.fails('post', '/secupass', { json: { secupass: sp('alice') } }, 409, 'SEALDROP_E_SECUPASS_ACTIVE');
    await alice.fails('put', '/secupass', { json: { currentSecupass: 'not the secupass', newSecupass: sp('alice2') } }, 403, 'SEALDROP_E_WRONG_SECUPASS');
    await alice.ok('put', '/secupass', { json: { currentSecupass: sp('alice'), newSecupass: sp('alice2') } });
    const bobKey = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: BOB }], passphrase: sp('bob'), format: 'armored' });
    await bob.ok('post', '/secupass', { json: { publicKey: bobKey.publicKey, privateKey: bobKey.privateKey } }, 201);
    await bob.fails('post', '/secupass', { json: {} }, 409, 'SEALDROP_E_SECUPASS_ACTIVE');
    await robot.fails('post', '/secupass', { json: { secupass: sp('robot') } }, 403, 'SEALDROP_E_FORBIDDEN');
    await carol.fails('get', '/secupass/key', {}, 409, 'SEALDROP_E_SECUPASS_REQUIRED');
    const aliceKey = await alice.ok<Wrapped<'key', { privateKey: string }>>('get', '/secupass/key');

    // SSH keys.
    const line = sshKeyLine('alice laptop');
    const sshKey = await alice.ok<Wrapped<'key', { id: string; fingerprint: string }>>('post', '/ssh-keys', { json: { publicKey: line } }, 201);
    await alice.fails('post', '/ssh-keys', { json: { publicKey: line } }, 409, 'SEALDROP_E_CONFLICT');
    await alice.fails('post', '/ssh-keys', { json: { publicKey: 'ssh-dss AAAAB3NzaC1kc3M=' } }, 400, 'SEALDROP_E_KEY_INVALID');
    expect((await alice.ok<Wrapped<'keys', unknown[]>>('get', '/ssh-keys')).keys).toHaveLength(1);
    await bob.fails('delete', '/ssh-keys/{id}', { params: { id: sshKey.key.id } }, 404, 'SEALDROP_E_NOT_FOUND');
    await alice.ok('delete', '/ssh-keys/{id}', { params: { id: sshKey.key.fingerprint } }, 204);

    // Level 3: a client-encrypted and a plain file; bob's key is active, carol has none yet.
    const d3 = (await cron.ok<{ id: string }>('post', '/deliveries', { json: { to: [BOB, CAROL], subject: 'Level 3', level: 3, message: 'hello level 3', expiresInDays: 7 } }, 201)).id;
    await alice.fails('post', '/deliveries', { json: { to: [BOB], subject: 'x', level: 5 } }, 400, 'SEALDROP_E_VALIDATION');
    await robot.fails('post', '/deliveries', { json: { to: [BOB], subject: 'x', level: 2 } }, 403, 'SEALDROP_E_FORBIDDEN');
    await carol.fails('post', '/deliveries', { json: { to: [BOB], subject: 'x', level: 3 } }, 409, 'SEALDROP_E_SECUPASS_REQUIRED');
    await alice.fails('post', '/deliveries', { json: { dropFolder: 'nowhere' } }, 404, 'SEALDROP_E_NOT_FOUND');
    const keys3 = await cron.ok<Wrapped<'keys', Array<{ role: string; publicKey: string }>>>('get', '/deliveries/{id}/encryption-keys', { params: { id: d3 } });
    expect(keys3.keys.map((k) => k.role).sort()).toEqual(['owner', 'recipient']);
    const secret = Buffer.from(`client encrypted ${tag}`);
    const clientFile = await cron.ok<Wrapped<'file', { id: string; size: number }>>(
      'put',
      '/deliveries/{id}/files/{fileId}',
      { params: { id: d3, fileId: 'client.txt' }, body: await encryptTo(keys3.keys, secret), contentType: 'application/pgp-encrypted', headers: { 'x-plaintext-size': String(secret.length) } },
      201,
    );
    expect(clientFile.file.size).toBe(secret.length);
    await cron.ok('put', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: 'plain ä.txt' }, body: Buffer.from('plain'), contentType: 'application/octet-stream' }, 201);
    const extra = await cron.ok<Wrapped<'file', { id: string }>>('put', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: 'extra.txt' }, body: 'extra', contentType: 'application/octet-stream' }, 201);
    await cron.fails('put', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: 'trailing dot.' }, body: 'x', contentType: 'application/octet-stream' }, 400, 'SEALDROP_E_INVALID_NAME');
    await cron.fails('put', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: 'forged.txt' }, body: 'not openpgp at all', contentType: 'application/pgp-encrypted' }, 400, 'SEALDROP_E_VALIDATION');
    await cron.ok('delete', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: extra.file.id } }, 204);
    await cron.fails('delete', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: randomUUID() } }, 404, 'SEALDROP_E_NOT_FOUND');
    await cron.fails('put', '/deliveries/{id}/message', { params: { id: d3 }, body: await encryptTo(keys3.keys, secret), contentType: 'application/pgp-encrypted' }, 409, 'SEALDROP_E_WRONG_STATE');
    await cron.fails('put', '/deliveries/{id}/message', { params: { id: d3 }, body: 'plain text', contentType: 'text/plain' }, 400, 'SEALDROP_E_VALIDATION');
    await bob.fails('get', '/deliveries/{id}', { params: { id: d3 } }, 404, 'SEALDROP_E_NOT_FOUND');
    const sent3 = await cron.ok<Wrapped<'delivery', DeliveryJson>>('post', '/deliveries/{id}/send', { params: { id: d3 } });
    expect(Object.fromEntries(sent3.delivery.recipients.map((r) => [r.email, r.state]))).toEqual({ [BOB]: 'available', [CAROL]: 'awaiting_secupass' });
    await cron.fails('post', '/deliveries/{id}/send', { params: { id: d3 } }, 409, 'SEALDROP_E_WRONG_STATE');
    await cron.fails('get', '/deliveries/{id}/encryption-keys', { params: { id: d3 } }, 409, 'SEALDROP_E_WRONG_STATE');
    await bob.fails('post', '/deliveries/{id}/revoke', { params: { id: d3 } }, 403, 'SEALDROP_E_FORBIDDEN');

    // Bob reads it; carol cannot yet.
    const inbox = await bob.ok<Wrapped<'deliveries', DeliveryJson[]>>('get', '/deliveries', { query: { box: 'inbox' } });
    expect(inbox.deliveries.map((d) => d.id)).toEqual([d3]);
    await bob.ok('get', '/deliveries/{id}', { params: { id: d3 } });
    const fileIds = Object.fromEntries(sent3.delivery.files.map((f) => [f.name, f.id]));
    const got = await bob.req('get', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: fileIds['client.txt'] as string } });
    expect([got.status, got.headers.get('content-type')]).toEqual([200, 'application/pgp-encrypted']);
    const bobPrivate = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: bobKey.privateKey }), passphrase: sp('bob') });
    const opened = await openpgp.decrypt({ message: await openpgp.readMessage({ binaryMessage: got.raw }), decryptionKeys: bobPrivate, format: 'binary' });
    expect(Buffer.from(opened.data as Uint8Array).equals(secret)).toBe(true);
    expect((await bob.ok<{ message: string }>('get', '/deliveries/{id}/message', { params: { id: d3 } })).message).toBe('hello level 3');
    await carol.fails('get', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: fileIds['client.txt'] as string } }, 409, 'SEALDROP_E_SECUPASS_REQUIRED');

    // Level 4: message encrypted by the server at creation, then replaced by one from the client.
    const d4 = (await alice.ok<{ id: string }>('post', '/deliveries', { json: { to: [CAROL], subject: 'Level 4', level: 4, message: 'server-side message' } }, 201)).id;
    const keys4 = await alice.ok<Wrapped<'keys', Array<{ role: string; publicKey: string }>>>('get', '/deliveries/{id}/encryption-keys', { params: { id: d4 } });
    expect(keys4.keys.map((k) => k.role)).toEqual(['owner']);
    const message4 = Buffer.from('client-side message');
    const stored = await alice.ok<Wrapped<'delivery', { hasMessage: boolean }>>('put', '/deliveries/{id}/message', {
      params: { id: d4 },
      body: await encryptTo(keys4.keys, message4),
      contentType: 'application/pgp-encrypted',
      headers: { 'x-plaintext-size': String(message4.length) },
    });
    expect(stored.delivery.hasMessage).toBe(true);
    await alice.ok('put', '/deliveries/{id}/files/{fileId}', { params: { id: d4, fileId: 'four.txt' }, body: 'four', contentType: 'application/octet-stream' }, 201);
    await alice.ok('post', '/deliveries/{id}/send', { params: { id: d4 } });
    await alice.fails('post', '/deliveries/{id}/release', { params: { id: d4 }, json: { secupass: sp('alice2') } }, 409, 'SEALDROP_E_WRONG_STATE');

    // Carol activates her SecuPass: both deliveries await release.
    await carol.ok('post', '/secupass', { json: { secupass: sp('carol') } }, 201);
    await carol.fails('get', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: fileIds['client.txt'] as string } }, 403, 'SEALDROP_E_NOT_RELEASED');
    await carol.fails('get', '/deliveries/{id}/release-material', { params: { id: d3 } }, 404, 'SEALDROP_E_NOT_FOUND');

    // Client-side release of level 3: wraps made here from the release material.
    const material = await cron.ok<{ items: Array<{ fileId: string; ownerWrap: string }>; recipients: Array<{ recipientId: string; fingerprint: string; publicKey: string }> }>('get', '/deliveries/{id}/release-material', { params: { id: d3 } });
    expect(material.recipients.map((r) => r.recipientId)).toEqual([sent3.delivery.recipients.find((r) => r.email === CAROL)?.id]);
    const ownerKey = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: aliceKey.key.privateKey }), passphrase: sp('alice2') });
    const wraps = await clientWraps(material, ownerKey);
    await cron.fails('post', '/deliveries/{id}/wraps', { params: { id: d3 }, json: { wraps: [{ ...wraps[0], fingerprint: '0'.repeat(40) }] } }, 400, 'SEALDROP_E_WRAP_INVALID');
    await cron.ok('post', '/deliveries/{id}/wraps', { params: { id: d3 }, json: { wraps } });
    await cron.fails('get', '/deliveries/{id}/release-material', { params: { id: d3 } }, 409, 'SEALDROP_E_WRONG_STATE');
    expect((await carol.req('get', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: fileIds['plain ä.txt'] as string } })).status).toBe(200);

    // Server-side release of level 4; carol opens the message.
    await alice.fails('post', '/deliveries/{id}/release', { params: { id: d4 }, json: { secupass: 'not the secupass' } }, 403, 'SEALDROP_E_WRONG_SECUPASS');
    await bob.fails('post', '/deliveries/{id}/release', { params: { id: d4 }, json: { secupass: sp('bob') } }, 404, 'SEALDROP_E_NOT_FOUND');
    const released = await alice.ok<Wrapped<'delivery', DeliveryJson>>('post', '/deliveries/{id}/release', { params: { id: d4 }, json: { secupass: sp('alice2') } });
    expect(released.delivery.recipients.map((r) => r.state)).toEqual(['available']);
    const msg = await carol.req('get', '/deliveries/{id}/message', { params: { id: d4 } });
    expect([msg.status, msg.headers.get('content-type')]).toEqual([200, 'application/pgp-encrypted']);

    // Level 2 to bob and an address without an account; invitations; revoke.
    const d2 = (await alice.ok<{ id: string }>('post', '/deliveries', { json: { to: [BOB, 'dave@example.org'], subject: 'Level 2', level: 2 } }, 201)).id;
    const f2 = await alice.ok<Wrapped<'file', { id: string }>>('put', '/deliveries/{id}/files/{fileId}', { params: { id: d2, fileId: 'two.txt' }, body: 'level two', contentType: 'application/octet-stream' }, 201);
    await alice.ok('post', '/deliveries/{id}/send', { params: { id: d2 } });
    const two = await bob.req('get', '/deliveries/{id}/files/{fileId}', { params: { id: d2, fileId: f2.file.id } });
    expect([two.status, two.headers.get('content-type'), two.raw.toString()]).toEqual([200, 'application/octet-stream', 'level two']);
    expect((await bob.ok<{ message: string | null }>('get', '/deliveries/{id}/message', { params: { id: d2 } })).message).toBeNull();
    await alice.ok('post', '/invitations/{email}/resend', { params: { email: 'dave@example.org' } }, 202);
    await alice.fails('post', '/invitations/{email}/resend', { params: { email: BOB } }, 409, 'SEALDROP_E_WRONG_STATE');
    await carol.fails('post', '/invitations/{email}/resend', { params: { email: 'dave@example.org' } }, 404, 'SEALDROP_E_NOT_FOUND');
    await alice.ok('post', '/deliveries/{id}/revoke', { params: { id: d2 } });
    await alice.fails('post', '/deliveries/{id}/revoke', { params: { id: d2 } }, 409, 'SEALDROP_E_WRONG_STATE');
    await bob.fails('get', '/deliveries/{id}/files/{fileId}', { params: { id: d2, fileId: f2.file.id } }, 410, 'SEALDROP_E_REVOKED');

    // Level 1 through its link.
    const d1 = (await alice.ok<{ id: string }>('post', '/deliveries', { json: { to: ['link@example.org'], subject: 'Level 1', level: 1, message: 'see the flyer' } }, 201)).id;
    const f1 = await alice.ok<Wrapped<'file', { id: string }>>('put', '/deliveries/{id}/files/{fileId}', { params: { id: d1, fileId: 'flyer.txt' }, body: 'flyer', contentType: 'application/octet-stream' }, 201);
    await alice.ok('post', '/deliveries/{id}/send', { params: { id: d1 } });
    const linkMail = await smtp.waitFor('link@example.org', 'delivery_link');
    const linkToken = linkIn(linkMail, 'http://127.0.0.1:8080/link').searchParams.get('token') as string;
    const viaLink = await anon.ok<Wrapped<'delivery', { message: string }>>('get', '/links/{token}', { params: { token: linkToken } });
    expect(viaLink.delivery.message).toBe('see the flyer');
    const flyer = await anon.req('get', '/links/{token}/files/{fileId}', { params: { token: linkToken, fileId: f1.file.id }, query: { email: 'visitor@example.net' } });
    expect([flyer.status, flyer.raw.toString()]).toEqual([200, 'flyer']);
    await anon.fails('get', '/links/{token}/files/{fileId}', { params: { token: linkToken, fileId: f1.file.id } }, 400, 'SEALDROP_E_INVALID_EMAIL');
    await anon.fails('get', '/links/{token}/files/{fileId}', { params: { token: linkToken, fileId: randomUUID() }, query: { email: 'visitor@example.net' } }, 404, 'SEALDROP_E_NOT_FOUND');
    await anon.fails('get', '/links/{token}', { params: { token: `sdl_${'A'.repeat(43)}` } }, 400, 'SEALDROP_E_TOKEN_INVALID');

    // Lists.
    const outbox = await cron.ok<Wrapped<'deliveries', DeliveryJson[]>>('get', '/deliveries', { query: { box: 'outbox', state: 'sent', limit: '10' } });
    expect(outbox.deliveries.map((d) => d.id).sort()).toEqual([d1, d3, d4].sort());
    await alice.fails('get', '/deliveries', { query: { box: 'elsewhere' } }, 400, 'SEALDROP_E_VALIDATION');
    await robot.fails('get', '/deliveries', { query: { box: 'inbox' } }, 403, 'SEALDROP_E_SCOPE');
    await alice.fails('get', '/deliveries/{id}', { params: { id: randomUUID() } }, 404, 'SEALDROP_E_NOT_FOUND');

    // Notifications.
    const notes = await alice.ok<Wrapped<'notifications', Array<{ id: string; kind: string }>>>('get', '/notifications');
    expect(notes.notifications.map((n) => n.kind)).toContain('release_needed');
    await alice.ok('get', '/notifications', { query: { unread: 'true' } });
    expect(await alice.ok('post', '/notifications/read', { json: { ids: [notes.notifications[0]?.id] } })).toEqual({ marked: 1 });
    expect((await alice.ok<{ marked: number }>('post', '/notifications/read')).marked).toBe(notes.notifications.length - 1);

    // Password reset by mail.
    await anon.ok('post', '/password-reset', { json: { email: BOB } }, 202);
    const resetMail = await smtp.waitFor(BOB, 'password_reset');
    const resetToken = linkIn(resetMail, 'http://127.0.0.1:8080/password-reset').searchParams.get('token') as string;
    await anon.fails('post', '/password-reset/complete', { json: { token: `sdr_${'A'.repeat(43)}`, password: pw('bob2') } }, 400, 'SEALDROP_E_TOKEN_INVALID');
    await anon.ok('post', '/password-reset/complete', { json: { token: resetToken, password: pw('bob2') } }, 204);
    await bob.fails('get', '/me', {}, 401, 'SEALDROP_E_UNAUTHENTICATED');
    const bob2 = await login(BOB, pw('bob2'));

    // SecuPass reset by an admin.
    await alice.fails('post', '/admin/accounts/{email}/secupass-reset', { params: { email: BOB } }, 403, 'SEALDROP_E_SCOPE');
    expect(await admin.ok('post', '/admin/accounts/{email}/secupass-reset', { params: { email: BOB } })).toMatchObject({ accessLost: 1, unreleasable: 0 });
    await admin.fails('post', '/admin/accounts/{email}/secupass-reset', { params: { email: BOB } }, 409, 'SEALDROP_E_WRONG_STATE');
    await bob2.fails('get', '/deliveries/{id}/files/{fileId}', { params: { id: d3, fileId: fileIds['client.txt'] as string } }, 410, 'SEALDROP_E_ACCESS_LOST');

    // Log out.
    await alice.ok('delete', '/session', {}, 204);
    await alice.fails('get', '/me', {}, 401, 'SEALDROP_E_UNAUTHENTICATED');

    // Every documented operation answered with success at least once.
    const succeeded = new Set(seen.filter((s) => s.status < 300).map((s) => s.op));
    expect(operations().map(({ method, path }) => `${method} ${path}`).filter((op) => !succeeded.has(op))).toEqual([]);
  });
});
