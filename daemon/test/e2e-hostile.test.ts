/**
 * Outside-in: hostile and mistaken requests against the real daemon. Each gets a clear error
 * code, none crashes it, and an aborted or refused upload leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { promisify } from 'node:util';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api } from './support/api.ts';
import { filesUnder } from './support/canary.ts';
import { until } from './support/wait.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';

const run = promisify(execFile);
const PW = 'a long enough password 1';

let sb: Sandbox;
let daemon: DaemonProcess;
let anon: Api;
let alice: Api;
let mallory: Api;
let deliveryId: string;

beforeAll(async () => {
  sb = sandbox({
    SEALDROP_DELIVERIES__MAX_FILE_BYTES: String(1024 * 1024),
    SEALDROP_HTTP__MAX_JSON_BYTES: '4096',
    SEALDROP_ACCOUNTS__LOGIN_MAX_FAILURES: '3',
    SEALDROP_ACCOUNTS__RELEASE_MAX_ATTEMPTS: '3',
  });
  for (const email of ['alice@example.org', 'mallory@example.org', 'locked@example.org']) {
    const r = await runCli(sb, ['account', 'add', '--email', email, '--role', 'member', '--password-stdin'], PW);
    expect(r.code, r.stderr).toBe(0);
  }
  daemon = await startDaemonProcess(sb);
  anon = new Api(daemon.url);
  alice = await anon.login('alice@example.org', PW);
  mallory = await anon.login('mallory@example.org', PW);
  await alice.ok('POST', '/api/v1/secupass', { secupass: 'alice secupass long' }, 201);
  deliveryId = (await alice.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: 'S', level: 3 }, 201)).id;
});

afterAll(async () => {
  expect(await daemon?.stop()).toBe(0);
  sb?.remove();
});

async function rawRequest(options: http.RequestOptions, body?: Buffer | string): Promise<{ status: number; body: string; connection: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: daemon.port, ...options }, (res) => {
      let data = '';
      res.on('data', (d: Buffer) => (data += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data, connection: String(res.headers.connection) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function blobFiles(): string[] {
  return filesUnder(`${sb.dataDir}/blobs`);
}

describe('hostile input over HTTP', () => {
  it('refuses path-like and oversized file names', async () => {
    for (const name of ['..%2Fx', '%2E%2E%2Fetc%2Fpasswd', 'a%2Fb', 'a%5Cb', 'x%00y', encodeURIComponent('n'.repeat(300)), '%20lead', 'trail.']) {
      await alice.fails('PUT', `/api/v1/deliveries/${deliveryId}/files/${name}`, Buffer.from('x'), 400, 'SEALDROP_E_INVALID_NAME');
    }
    // fetch() would normalize an encoded ".." segment away; send it raw.
    const dots = await rawRequest({ method: 'PUT', path: `/api/v1/deliveries/${deliveryId}/files/%2E%2E`, headers: { authorization: `Bearer ${alice.token}` } }, 'x');
    expect([dots.status, JSON.parse(dots.body).error.code]).toEqual([400, 'SEALDROP_E_INVALID_NAME']);
    // A literal "/../" in the path is no file name at all.
    const { stdout } = await run('curl', ['-s', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '--data-binary', 'x', '-H', `Authorization: Bearer ${alice.token}`, `${daemon.url}/api/v1/deliveries/${deliveryId}/files/../../x`]);
    expect(['404', '400']).toContain(stdout);
    expect(blobFiles()).toEqual([]);
  });

  it('refuses malformed e-mail addresses everywhere', async () => {
    for (const bad of ['plain', 'a@@example.org', 'a@example', 'a b@example.org', '<a@example.org>', 'a@example.org\r\nBcc: x@example.org', `${'a'.repeat(70)}@example.org`, 'a@127.0.0.1']) {
      await alice.fails('POST', '/api/v1/deliveries', { to: [bad], subject: 'S', level: 3 }, 400, 'SEALDROP_E_INVALID_EMAIL');
    }
    await alice.fails('POST', '/api/v1/deliveries', { to: 'a@example.org', subject: 'S', level: 3 }, 400, 'SEALDROP_E_VALIDATION');
  });

  it('refuses too-large bodies and files, storing nothing', async () => {
    await alice.fails('POST', '/api/v1/deliveries', { to: ['a@example.org'], subject: 'x'.repeat(5000), level: 3 }, 413, 'SEALDROP_E_TOO_LARGE');
    const big = randomBytes(1024 * 1024 + 1);
    await alice.fails('PUT', `/api/v1/deliveries/${deliveryId}/files/big.bin`, big, 413, 'SEALDROP_E_TOO_LARGE');
    // Declared too large: refused before the body is read.
    const declared = await rawRequest({ method: 'PUT', path: `/api/v1/deliveries/${deliveryId}/files/huge.bin`, headers: { authorization: `Bearer ${alice.token}`, 'content-length': String(50 * 1024 * 1024 * 1024) } });
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body).error.code).toBe('SEALDROP_E_TOO_LARGE');
    // Chunked without a length, too long: cut off at the limit.
    const chunked = await rawRequest({ method: 'PUT', path: `/api/v1/deliveries/${deliveryId}/files/chunked.bin`, headers: { authorization: `Bearer ${alice.token}`, 'transfer-encoding': 'chunked' } }, big);
    expect(chunked.status).toBe(413);
    // Far more than the socket buffers hold: the refusal still arrives as an answer, not as a
    // reset, and a rest within the settle bound leaves the connection usable.
    for (const size of [6, 40]) {
      const huge = await rawRequest({ method: 'PUT', path: `/api/v1/deliveries/${deliveryId}/files/huge-chunked.bin`, headers: { authorization: `Bearer ${alice.token}`, 'transfer-encoding': 'chunked' } }, Buffer.alloc(size * 1024 * 1024, 7));
      expect([huge.status, JSON.parse(huge.body).error.code, huge.connection]).toEqual([413, 'SEALDROP_E_TOO_LARGE', size === 6 ? 'keep-alive' : 'close']);
    }
    const webdav = await rawRequest({ method: 'PUT', path: '/dav/outbox/bob@example.org/huge.bin', headers: { authorization: `Basic ${Buffer.from(`alice@example.org:${PW}`).toString('base64')}`, 'transfer-encoding': 'chunked' } }, Buffer.alloc(6 * 1024 * 1024, 7));
    expect(webdav.status).toBe(413);
    // A client-encrypted level-4 message is bounded by the message limit, with or without a length.
    const d4 = (await alice.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: 'M', level: 4 }, 201)).id;
    const { key } = await alice.ok<{ key: { publicKey: string } }>('GET', '/api/v1/secupass/key');
    const message = await openpgp.encrypt({ message: await openpgp.createMessage({ binary: randomBytes(200 * 1024) }), encryptionKeys: await openpgp.readKey({ armoredKey: key.publicKey }), format: 'binary' });
    const pgp = Buffer.from(message as Uint8Array);
    const messageChunked = await rawRequest({ method: 'PUT', path: `/api/v1/deliveries/${d4}/message`, headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/pgp-encrypted', 'transfer-encoding': 'chunked' } }, pgp);
    expect([messageChunked.status, JSON.parse(messageChunked.body).error.code]).toEqual([413, 'SEALDROP_E_TOO_LARGE']);
    const messageDeclared = await rawRequest({ method: 'PUT', path: `/api/v1/deliveries/${d4}/message`, headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/pgp-encrypted', 'content-length': String(pgp.length) } }, pgp);
    expect(messageDeclared.status).toBe(413);
    expect((await alice.ok<{ delivery: { hasMessage: boolean } }>('GET', `/api/v1/deliveries/${d4}`)).delivery.hasMessage).toBe(false);
    expect(blobFiles()).toEqual([]);
    expect(filesUnder(`${sb.dataDir}/blobs/tmp`)).toEqual([]);
  });

  it('refuses malformed JSON and wrong content types', async () => {
    const h = { authorization: `Bearer ${alice.token}` };
    const r1 = await rawRequest({ method: 'POST', path: '/api/v1/deliveries', headers: { ...h, 'content-type': 'application/json' } }, '{"to": [');
    expect([r1.status, JSON.parse(r1.body).error.code]).toEqual([400, 'SEALDROP_E_VALIDATION']);
    const r2 = await rawRequest({ method: 'POST', path: '/api/v1/deliveries', headers: { ...h, 'content-type': 'application/json' } }, '[1,2]');
    expect([r2.status, JSON.parse(r2.body).error.code]).toEqual([400, 'SEALDROP_E_VALIDATION']);
    const r3 = await rawRequest({ method: 'POST', path: '/api/v1/deliveries', headers: { ...h, 'content-type': 'text/plain' } }, 'hello');
    expect([r3.status, JSON.parse(r3.body).error.code]).toEqual([400, 'SEALDROP_E_VALIDATION']);
    await alice.fails('POST', '/api/v1/deliveries', { to: ['a@example.org'], subject: 'S', level: '3' }, 400, 'SEALDROP_E_VALIDATION');
    await alice.fails('POST', '/api/v1/deliveries', { to: ['a@example.org'], subject: 'line\nbreak', level: 3 }, 400, 'SEALDROP_E_VALIDATION');
  });

  it('refuses bad credentials, foreign deliveries, missing scopes and wrong states', async () => {
    await anon.fails('GET', '/api/v1/deliveries', undefined, 401, 'SEALDROP_E_UNAUTHENTICATED');
    await anon.as('sds_not-a-real-token').fails('GET', '/api/v1/me', undefined, 401, 'SEALDROP_E_UNAUTHENTICATED');
    await anon.as(`sds_${'A'.repeat(43)}`).fails('GET', '/api/v1/me', undefined, 401, 'SEALDROP_E_UNAUTHENTICATED');
    await mallory.fails('GET', `/api/v1/deliveries/${deliveryId}`, undefined, 404, 'SEALDROP_E_NOT_FOUND');
    await mallory.fails('PUT', `/api/v1/deliveries/${deliveryId}/files/x.txt`, Buffer.from('x'), 404, 'SEALDROP_E_NOT_FOUND');
    await mallory.fails('GET', '/api/v1/deliveries/not-a-uuid', undefined, 404, 'SEALDROP_E_NOT_FOUND');
    // A fetch-only token cannot send; a revoked token stops working.
    const t = await alice.ok<{ token: string; id: string }>('POST', '/api/v1/tokens', { name: 'fetch only', scopes: ['fetch'] }, 201);
    const fetchOnly = anon.as(t.token);
    await fetchOnly.fails('POST', '/api/v1/deliveries', { to: ['a@example.org'], subject: 'S', level: 3 }, 403, 'SEALDROP_E_SCOPE');
    await fetchOnly.fails('POST', '/api/v1/tokens', { name: 'again', scopes: ['fetch'] }, 403, 'SEALDROP_E_FORBIDDEN');
    await alice.fails('POST', '/api/v1/tokens', { name: 'admin', scopes: ['admin'] }, 403, 'SEALDROP_E_FORBIDDEN');
    await alice.fails('POST', '/api/v1/tokens', { name: 'x', scopes: ['everything'] }, 400, 'SEALDROP_E_VALIDATION');
    await alice.ok('DELETE', `/api/v1/tokens/${t.id}`, undefined, 204);
    await fetchOnly.fails('GET', '/api/v1/deliveries', undefined, 401, 'SEALDROP_E_UNAUTHENTICATED');
    // Wrong states.
    await alice.fails('POST', `/api/v1/deliveries/${deliveryId}/send`, undefined, 409, 'SEALDROP_E_WRONG_STATE');
    await alice.ok('PUT', `/api/v1/deliveries/${deliveryId}/files/ok.txt`, Buffer.from('ok'), 201);
    await alice.ok('POST', `/api/v1/deliveries/${deliveryId}/send`);
    await alice.fails('POST', `/api/v1/deliveries/${deliveryId}/send`, undefined, 409, 'SEALDROP_E_WRONG_STATE');
    await alice.fails('PUT', `/api/v1/deliveries/${deliveryId}/files/late.txt`, Buffer.from('late'), 409, 'SEALDROP_E_WRONG_STATE');
    await alice.fails('POST', `/api/v1/deliveries/${deliveryId}/release`, { secupass: 'alice secupass long' }, 409, 'SEALDROP_E_WRONG_STATE');
    await alice.fails('POST', '/api/v1/secupass', { secupass: 'another secupass long' }, 409, 'SEALDROP_E_SECUPASS_ACTIVE');
  });

  it('rate-limits wrong logins and wrong SecuPass attempts', async () => {
    for (let i = 0; i < 3; i++) await anon.fails('POST', '/api/v1/session', { email: 'locked@example.org', password: `wrong ${i}` }, 401, 'SEALDROP_E_LOGIN_FAILED');
    const r = await anon.call<{ error: { code: string } }>('POST', '/api/v1/session', { email: 'locked@example.org', password: PW });
    expect([r.status, r.body.error.code]).toEqual([429, 'SEALDROP_E_RATE_LIMITED']);
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    // Unknown addresses answer like wrong passwords.
    await anon.fails('POST', '/api/v1/session', { email: 'nobody@example.org', password: PW }, 401, 'SEALDROP_E_LOGIN_FAILED');
    await anon.fails('POST', '/api/v1/session', { email: ['x'], password: PW }, 401, 'SEALDROP_E_LOGIN_FAILED');

    const m = await mallory.ok<{ id: string }>('POST', '/api/v1/secupass', { secupass: 'mallory secupass long' }, 201);
    expect(m).toBeTruthy();
    const d = await mallory.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['bob2@example.org'], subject: 'S', level: 3 }, 201);
    await mallory.ok('PUT', `/api/v1/deliveries/${d.id}/files/f`, Buffer.from('f'), 201);
    await mallory.ok('POST', `/api/v1/deliveries/${d.id}/send`);
    // Nothing awaits release: refused before any SecuPass check, and not counted.
    await mallory.fails('POST', `/api/v1/deliveries/${d.id}/release`, { secupass: 'wrong' }, 409, 'SEALDROP_E_WRONG_STATE');
  });

  it('refuses expired, reused and malformed registration and link tokens', async () => {
    await anon.fails('POST', '/api/v1/registration', { token: 'sdi_x', password: PW }, 400, 'SEALDROP_E_TOKEN_INVALID');
    await anon.fails('POST', '/api/v1/registration', { token: `sdi_${'B'.repeat(43)}`, password: PW }, 400, 'SEALDROP_E_TOKEN_INVALID');
    await anon.fails('POST', '/api/v1/registration', { token: 42, password: PW }, 400, 'SEALDROP_E_TOKEN_INVALID');
    await anon.fails('POST', '/api/v1/password-reset/complete', { token: `sdr_${'C'.repeat(43)}`, password: PW }, 400, 'SEALDROP_E_TOKEN_INVALID');
    await anon.fails('GET', `/api/v1/links/sdl_${'D'.repeat(43)}`, undefined, 400, 'SEALDROP_E_TOKEN_INVALID');
    // Password reset for unknown addresses is accepted silently (no account enumeration).
    await anon.ok('POST', '/api/v1/password-reset', { email: 'nobody@example.org' }, 202);
  });

  it('survives an upload aborted by the client and keeps nothing of it', async () => {
    const d = await alice.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['carl@example.org'], subject: 'Abort', level: 3 }, 201);
    await new Promise<void>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: daemon.port, method: 'PUT', path: `/api/v1/deliveries/${d.id}/files/part.bin`, headers: { authorization: `Bearer ${alice.token}`, 'content-length': String(900_000) } });
      req.on('error', () => resolve());
      req.write(randomBytes(300_000), () => setTimeout(() => {
        req.destroy();
        resolve();
      }, 100));
    });
    await until('the partial upload to be removed', () => filesUnder(`${sb.dataDir}/blobs/tmp`).length === 0, 10_000);
    const view = await alice.ok<{ delivery: { files: unknown[] } }>('GET', `/api/v1/deliveries/${d.id}`);
    expect(view.delivery.files).toEqual([]);
  });

  it('answers unknown routes and methods with JSON errors and stays healthy', async () => {
    await anon.fails('GET', '/api/v1/nope', undefined, 401, 'SEALDROP_E_UNAUTHENTICATED');
    await alice.fails('GET', '/api/v1/nope', undefined, 404, 'SEALDROP_E_NOT_FOUND');
    const page = await fetch(`${daemon.url}/nothing/here`);
    expect([page.status, page.headers.get('content-type')]).toEqual([404, 'text/html; charset=utf-8']);
    expect(await page.text()).toContain('Not found.');
    const r = await rawRequest({ method: 'BREW', path: '/api/v1/deliveries' });
    expect(r.status).toBeGreaterThanOrEqual(400);
    const health = await anon.call('GET', '/healthz');
    expect(health.status).toBe(200);
    expect((await anon.call('GET', '/readyz')).status).toBe(200);
  });
});

describe('credentials, odd characters and the UI message route (found by a hostile-input probe)', () => {
  it('changes credentials only from a login session: an API token cannot add SSH keys, change the password or the SecuPass', async () => {
    const token = (await alice.ok<{ token: string }>('POST', '/api/v1/tokens', { name: 'fetch only', scopes: ['fetch'], expiresInDays: 1 }, 201)).token;
    const fetchOnly = alice.as(token);
    const publicKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl probe';
    expect(await fetchOnly.fails('POST', '/api/v1/ssh-keys', { publicKey }, 403, 'SEALDROP_E_FORBIDDEN')).toMatch(/login session/);
    await fetchOnly.fails('POST', '/api/v1/password', { currentPassword: PW, newPassword: 'another long password 2' }, 403, 'SEALDROP_E_FORBIDDEN');
    await fetchOnly.fails('PUT', '/api/v1/secupass', { currentSecupass: 'alice secupass long', newSecupass: 'another alice secupass' }, 403, 'SEALDROP_E_FORBIDDEN');
    await fetchOnly.fails('POST', '/api/v1/tokens', { name: 'x', scopes: ['fetch'] }, 403, 'SEALDROP_E_FORBIDDEN');
    // The login session still can.
    const key = await alice.ok<{ key: { id: string } }>('POST', '/api/v1/ssh-keys', { publicKey }, 201);
    await fetchOnly.fails('DELETE', `/api/v1/ssh-keys/${key.key.id}`, undefined, 403, 'SEALDROP_E_FORBIDDEN');
    await alice.ok('DELETE', `/api/v1/ssh-keys/${key.key.id}`, undefined, 204);
  });

  it('ends the other login sessions when the password changes, and counts wrong current passwords like failed logins', async () => {
    const email = 'changer@example.org';
    const r = await runCli(sb, ['account', 'add', '--email', email, '--role', 'member', '--password-stdin'], PW);
    expect(r.code, r.stderr).toBe(0);
    const one = await anon.login(email, PW);
    const two = await anon.login(email, PW);
    const next = 'the next long password 3';
    await one.ok('POST', '/api/v1/password', { currentPassword: PW, newPassword: next }, 204);
    await one.ok('GET', '/api/v1/me');
    await two.fails('GET', '/api/v1/me', undefined, 401, 'SEALDROP_E_UNAUTHENTICATED');
    // accounts.loginMaxFailures is 3 here: the fourth wrong guess is refused before checking.
    for (let i = 0; i < 3; i++) await one.fails('POST', '/api/v1/password', { currentPassword: `wrong ${i}`, newPassword: 'whatever long password 4' }, 401, 'SEALDROP_E_LOGIN_FAILED');
    await one.fails('POST', '/api/v1/password', { currentPassword: next, newPassword: 'whatever long password 4' }, 429, 'SEALDROP_E_RATE_LIMITED');
  });

  it('refuses NUL characters in paths, queries, JSON and WebDAV XML with 400, not an internal error', async () => {
    await alice.fails('DELETE', '/api/v1/tokens/%00', undefined, 404, 'SEALDROP_E_NOT_FOUND');
    await alice.fails('DELETE', '/api/v1/ssh-keys/a%00b', undefined, 404, 'SEALDROP_E_NOT_FOUND');
    await alice.fails('GET', '/api/v1/deliveries?state=%00', undefined, 400, 'SEALDROP_E_VALIDATION');
    await alice.fails('POST', '/api/v1/tokens', { name: 'a\u0000b', scopes: ['fetch'], expiresInDays: 1 }, 400, 'SEALDROP_E_VALIDATION');
    await alice.fails('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: 'S', level: 3, extra: { deep: ['x\u0000'] } }, 400, 'SEALDROP_E_VALIDATION');
    const basic = `Basic ${Buffer.from(`alice@example.org:${PW}`).toString('base64')}`;
    for (const body of ['<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>x&#0;y</D:owner></D:lockinfo>',
      '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:p>&#xD800;</Z:p></D:prop></D:set></D:propertyupdate>',
      '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:p>raw\u0000nul</Z:p></D:prop></D:set></D:propertyupdate>']) {
      const method = body.includes('lockinfo') ? 'LOCK' : 'PROPPATCH';
      const res = await fetch(`${daemon.url}/dav/outbox/nul@example.org/`, { method, headers: { authorization: basic, 'content-type': 'application/xml' }, body });
      expect(res.status, `${method}: ${await res.text()}`).toBe(400);
    }
    const internal = daemon.output().split('\n').filter((l) => l.includes('SEALDROP_E_INTERNAL'));
    expect(internal, internal.join('\n')).toEqual([]);
  });

  it('lists an inbox whose delivery subject is cut inside an emoji, and refuses bidirectional controls in subjects', async () => {
    const rcpt = 'emoji@example.org';
    const r = await runCli(sb, ['account', 'add', '--email', rcpt, '--role', 'member', '--password-stdin'], PW);
    expect(r.code, r.stderr).toBe(0);
    await alice.fails('POST', '/api/v1/deliveries', { to: [rcpt], subject: 'invoice \u202egpj.exe', level: 2 }, 400, 'SEALDROP_E_VALIDATION');
    const subject = `${'a'.repeat(79)}\u{1F600}tail`;
    const id = (await alice.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: [rcpt], subject, level: 2 }, 201)).id;
    await alice.ok('PUT', `/api/v1/deliveries/${id}/files/f.txt`, Buffer.from('emoji'), 201);
    await alice.ok('POST', `/api/v1/deliveries/${id}/send`);
    const basic = `Basic ${Buffer.from(`${rcpt}:${PW}`).toString('base64')}`;
    const res = await fetch(`${daemon.url}/dav/inbox/`, { method: 'PROPFIND', headers: { authorization: basic, depth: '1' } });
    const xml = await res.text();
    expect(res.status, xml).toBe(207);
    expect(decodeURIComponent(xml)).toContain(`${'a'.repeat(79)}\u{1F600} [${id.slice(0, 8)}]`);
  });

  it('takes a level-4 message from the web UI only for level 4 and within deliveries.maxMessageBytes', async () => {
    const login = await fetch(`${daemon.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ email: 'alice@example.org', password: PW }).toString(), redirect: 'manual' });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
    const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(await (await fetch(`${daemon.url}/inbox`, { headers: { cookie } })).text())?.[1] ?? '';
    const put = (id: string, body: Buffer) => fetch(`${daemon.url}/ui/api/deliveries/${id}/message`, { method: 'PUT', headers: { cookie, 'x-csrf-token': csrf, origin: daemon.url, 'content-type': 'application/pgp-encrypted' }, body: new Uint8Array(body) });
    const level3 = (await alice.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: 'L3', message: 'text', level: 3 }, 201)).id;
    const refused = await put(level3, Buffer.from('not a message'));
    expect([refused.status, (await refused.json()).error.code]).toEqual([409, 'SEALDROP_E_WRONG_STATE']);
    const level4 = (await alice.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: 'L4', level: 4 }, 201)).id;
    const big = await put(level4, randomBytes(200 * 1024));
    expect([big.status, (await big.json()).error.code]).toEqual([413, 'SEALDROP_E_TOO_LARGE']);
  });

  it('keeps at least one active admin: the last one cannot demote or disable itself', async () => {
    const r = await runCli(sb, ['account', 'add', '--email', 'root@example.org', '--role', 'admin', '--password-stdin'], PW);
    expect(r.code, r.stderr).toBe(0);
    const root = await anon.login('root@example.org', PW);
    expect(await root.fails('POST', '/api/v1/admin/accounts/root@example.org/disable', undefined, 409, 'SEALDROP_E_WRONG_STATE')).toMatch(/last active admin/);
    const d = await runCli(sb, ['account', 'disable', 'root@example.org']);
    expect(d.code).not.toBe(0);
    expect(d.stderr).toMatch(/last active admin/);
  });
});

describe('pages behind e-mailed links', () => {
  it('moves the registration token from the address into a cookie and shows errors next to the form, escaped', async () => {
    const xss = '"><script>alert(1)</script>';
    const first = await fetch(`${daemon.url}/register?token=${encodeURIComponent(xss)}`, { redirect: 'manual' });
    expect(first.status).toBe(302);
    expect(first.headers.get('location')).toBe('/register');
    const cookie = first.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^sd_reg=[^;]+; path=\/register; .*samesite=lax; httponly/i);
    const page = await fetch(`${daemon.url}/register`, { headers: { cookie: cookie.split(';')[0] as string } });
    const html = await page.text();
    expect(page.status).toBe(200);
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('name="password"');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('content-security-policy')).not.toContain('unsafe-inline');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    const post = (password: string, confirm: string, c = cookie.split(';')[0] as string) =>
      fetch(`${daemon.url}/register`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: c }, body: new URLSearchParams({ password, confirm }).toString(), redirect: 'manual' });
    const mismatch = await post(PW, 'other');
    expect([mismatch.status, await mismatch.text()]).toEqual([400, expect.stringContaining('The two passwords differ')]);
    const bad = await post(PW, PW);
    expect([bad.status, await bad.text()]).toEqual([400, expect.stringContaining('This link is invalid, expired or was used already')]);
    const none = await fetch(`${daemon.url}/register`);
    expect(await none.text()).toContain('Open the link from your invitation e-mail');
  });

  it('refuses UI form posts without the CSRF token and UI JSON calls without cookie and token', async () => {
    const login = await fetch(`${daemon.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ email: 'alice@example.org', password: PW }).toString(), redirect: 'manual' });
    expect(login.status).toBe(302);
    const session = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
    expect(login.headers.get('set-cookie')).toMatch(/sd_session=sdu_[^;]+; path=\/; .*samesite=strict; httponly/i);
    const noCsrf = await fetch(`${daemon.url}/logout`, { method: 'POST', headers: { cookie: session, 'content-type': 'application/x-www-form-urlencoded' }, body: '', redirect: 'manual' });
    expect(noCsrf.status).toBe(400);
    expect(await noCsrf.text()).toMatch(/form expired/);
    const api1 = await fetch(`${daemon.url}/ui/api/secupass/key`, { headers: { cookie: session } });
    expect([api1.status, (await api1.json()).error.code]).toEqual([403, 'SEALDROP_E_FORBIDDEN']);
    const api2 = await fetch(`${daemon.url}/ui/api/secupass/key`);
    expect([api2.status, (await api2.json()).error.code]).toEqual([401, 'SEALDROP_E_UNAUTHENTICATED']);
    // The browser session is no bearer token for the JSON API.
    const bearer = await fetch(`${daemon.url}/api/v1/me`, { headers: { authorization: `Bearer ${session.split('=')[1]}` } });
    expect(bearer.status).toBe(401);
    // Nor does the JSON API take the cookie.
    expect((await fetch(`${daemon.url}/api/v1/me`, { headers: { cookie: session } })).status).toBe(401);
    // A form posted from another site is refused even with a valid CSRF token.
    const inbox = await fetch(`${daemon.url}/inbox`, { headers: { cookie: session } });
    const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(await inbox.text())?.[1] ?? '';
    expect(csrf).toMatch(/^[\w-]{20,}$/);
    const crossSite = await fetch(`${daemon.url}/logout`, { method: 'POST', headers: { cookie: session, origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf }).toString(), redirect: 'manual' });
    expect([crossSite.status, crossSite.headers.get('location')]).toEqual([400, null]);
    expect(await crossSite.text()).toContain('came from another site');
    const logout = await fetch(`${daemon.url}/logout`, { method: 'POST', headers: { cookie: session, origin: daemon.url, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf }).toString(), redirect: 'manual' });
    expect(logout.status).toBe(302);
    // The ended session's cookie leads to the login page, which says why.
    const after = await fetch(`${daemon.url}/inbox`, { headers: { cookie: session }, redirect: 'manual' });
    expect(after.headers.get('location')).toBe('/login?next=%2Finbox&expired=1');
    expect(after.headers.get('set-cookie')).toMatch(/sd_session=;/);
    expect(await (await fetch(`${daemon.url}${after.headers.get('location')}`)).text()).toContain('Your session expired. Please log in again.');
    expect((await fetch(`${daemon.url}/inbox`, { redirect: 'manual' })).headers.get('location')).toBe('/login?next=%2Finbox');
  });

  it('sends the security headers with every page', async () => {
    for (const page of ['/login', '/register', '/no/such/page', '/inbox']) {
      const res = await fetch(`${daemon.url}${page}`);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, page).toContain("script-src 'self' 'wasm-unsafe-eval'");
      expect(csp, page).toContain("frame-ancestors 'none'");
      expect(csp, page).not.toContain('unsafe-inline');
      expect(res.headers.get('referrer-policy'), page).toBe('no-referrer');
      expect(res.headers.get('x-frame-options'), page).toBe('DENY');
      expect(res.headers.get('x-content-type-options'), page).toBe('nosniff');
    }
  });
});
