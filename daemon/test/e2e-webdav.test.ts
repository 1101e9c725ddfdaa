/**
 * Outside-in over WebDAV: the real daemon, litmus (every suite, against a drop folder), curl and
 * rclone as clients, gpg for what the recipient downloads, a real SMTP listener for the mails.
 * Locks and properties survive a restart of the daemon.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api } from './support/api.ts';
import { curl, litmus, rcloneDav } from './support/dav.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';
import { GpgKeyring } from './support/gpg.ts';
import { SmtpCatcher } from './support/smtp.ts';

const PW = 'dav test password 1';
const SP = { alice: 'alice secupass long', bob: 'bob secupass long' };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let smtp: SmtpCatcher;
let sb: Sandbox;
let daemon: DaemonProcess;
let api: Api;
let files: string;

const dav = (p: string) => `${daemon.url}/dav${p}`;
const as = (user: string, password = PW) => ['-u', `${user}:${password}`];

async function gpgDecrypt(email: string, secupass: string, file: string): Promise<Buffer> {
  const user = await api.login(email, PW);
  const key = await user.ok<{ key: { privateKey: string } }>('GET', '/api/v1/secupass/key');
  const gpg = await GpgKeyring.withKey(key.key.privateKey, secupass);
  try {
    return await gpg.decrypt(file);
  } finally {
    await gpg.remove();
  }
}

/** The names a PROPFIND Depth 1 lists below a folder (decoded, folders with a trailing /). */
async function listing(user: string, folder: string): Promise<string[]> {
  const url = folder.split('/').map((s) => encodeURIComponent(s)).join('/');
  const r = await curl([...as(user), '-X', 'PROPFIND', '-H', 'Depth: 1', dav(url)]);
  expect(r.status, `${r.stderr}\n${r.body.slice(0, 500)}`).toBe(207);
  const base = `/dav${folder.endsWith('/') ? folder : `${folder}/`}`;
  return [...r.body.matchAll(/<D:href>([^<]+)<\/D:href>/g)]
    .map((m) => decodeURIComponent((m[1] as string).replace(/&amp;/g, '&')))
    .filter((h) => h !== base && h.startsWith(base))
    .map((h) => h.slice(base.length))
    .sort();
}

beforeAll(async () => {
  smtp = await new SmtpCatcher().start();
  sb = sandbox({ SEALDROP_SFTP__ENABLED: 'false', SEALDROP_DROP_FOLDERS: '[{name: drop, owner: alice@example.org, recipients: [bob@example.org], level: 3}]' }, smtp.port);
  files = path.join(sb.dir, 'files');
  mkdirSync(files);
  for (const email of ['alice@example.org', 'bob@example.org']) {
    const r = await runCli(sb, ['account', 'add', '--email', email, '--role', 'member', '--password-stdin'], PW);
    expect(r.code, r.stderr).toBe(0);
  }
  daemon = await startDaemonProcess(sb);
  api = new Api(daemon.url);
  await (await api.login('alice@example.org', PW)).ok('POST', '/api/v1/secupass', { secupass: SP.alice }, 201);
  await (await api.login('bob@example.org', PW)).ok('POST', '/api/v1/secupass', { secupass: SP.bob }, 201);
});

afterAll(async () => {
  await daemon?.stop();
  await smtp?.stop();
  sb?.remove();
});

describe('WebDAV', () => {
  it('answers OPTIONS without credentials; takes the password or an API token of the same account', async () => {
    const opt = await curl(['-i', '-X', 'OPTIONS', dav('/outbox/x@example.org/any')]);
    expect(opt.status).toBe(200);
    expect(opt.body).toMatch(/^DAV: 1, 2\r?$/im);
    expect(opt.body).toMatch(/^MS-Author-Via: DAV\r?$/im);
    const anon = await curl(['-i', '-X', 'PROPFIND', '-H', 'Depth: 0', dav('/')]);
    expect(anon.status).toBe(401);
    expect(anon.body).toMatch(/^WWW-Authenticate: Basic realm="sealdrop"/im);
    expect((await curl([...as('alice@example.org', 'wrong password'), '-X', 'PROPFIND', '-H', 'Depth: 0', dav('/')])).status).toBe(401);
    const alice = await api.login('alice@example.org', PW);
    const { token } = await alice.ok<{ token: string }>('POST', '/api/v1/tokens', { name: 'dav', scopes: ['send', 'fetch'], expiresInDays: 1 }, 201);
    const root = await curl([...as('alice@example.org', token), '-X', 'PROPFIND', '-H', 'Depth: 1', dav('/')]);
    expect(root.status).toBe(207);
    expect(root.body).toContain('<D:href>/dav/drop/</D:href>');
    expect((await curl([...as('bob@example.org', token), '-X', 'PROPFIND', '-H', 'Depth: 0', dav('/')])).status).toBe(401);
    // Depth infinity is refused with the RFC's precondition.
    const inf = await curl([...as('alice@example.org'), '-X', 'PROPFIND', '-H', 'Depth: infinity', dav('/')]);
    expect([inf.status, inf.body.includes('propfind-finite-depth')]).toEqual([403, true]);
  });

  it('passes every litmus suite against a drop folder, and still answers afterwards', async () => {
    const work = path.join(sb.dir, 'litmus');
    mkdirSync(work);
    const { suites, output } = await litmus(dav('/drop/'), 'alice@example.org', PW, work);
    expect(suites.map((s) => s.suite)).toEqual(['basic', 'copymove', 'props', 'locks', 'http']);
    expect(suites.filter((s) => s.failed > 0), output.slice(-3000)).toEqual([]);
    expect(suites.reduce((n, s) => n + s.passed, 0)).toBe(104);
    expect(output).not.toMatch(/WARNING/);
    expect((await fetch(`${daemon.url}/healthz`)).status).toBe(200);
    expect(daemon.output()).not.toContain('"status":500');
  });

  it('takes uploads from curl (whole, chunked, temporary names, client noise), reads them back, sends on the trigger file; the recipient downloads and gpg decrypts', async () => {
    const alice = as('alice@example.org');
    const folder = '/outbox/bob@example.org';
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const src = path.join(files, 'report.bin');
    writeFileSync(src, data);
    const put = await curl([...alice, '-T', src, dav(`${folder}/report.bin`)]);
    expect(put.status, put.body).toBe(201);
    // Read back right after the upload (the integrity of the stored ciphertext is checked first).
    const back = path.join(files, 'back.bin');
    expect((await curl([...alice, '-o', back, dav(`${folder}/report.bin`)])).status).toBe(200);
    expect(sha(readFileSync(back))).toBe(sha(data));
    // A browser saves a file instead of rendering it (a delivered .html would be a page on this
    // origin), and whatever it renders runs nothing, posts nothing and has an origin of its own.
    const head = await curl([...alice, '-s', '-I', dav(`${folder}/report.bin`)]);
    expect(head.body).toMatch(/content-disposition: attachment; filename="report.bin"/i);
    expect(head.body).toMatch(/content-security-policy: default-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'; sandbox/i);
    // Chunked, as macOS Finder sends it, with the announced length checked.
    const chunk = randomBytes(1024 * 1024);
    const chunked = await curl([...alice, '-T', '-', '-H', 'Transfer-Encoding: chunked', '-H', `X-Expected-Entity-Length: ${chunk.length}`, dav(`${folder}/chunked.bin`)], chunk);
    expect(chunked.status, chunked.body).toBe(201);
    const short = await curl([...alice, '-T', '-', '-H', 'Transfer-Encoding: chunked', '-H', `X-Expected-Entity-Length: ${chunk.length + 1}`, dav(`${folder}/short.bin`)], chunk);
    expect(short.status).toBe(400);
    expect(short.body).toContain('SEALDROP_E_ABORTED');
    // A temporary name completed by MOVE; client noise accepted but never delivered.
    expect((await curl([...alice, '-T', '-', dav(`${folder}/notes.txt.part`)], 'notes\n')).status).toBe(201);
    const moved = await curl([...alice, '-X', 'MOVE', '-H', `Destination: ${dav(`${folder}/notes.txt`)}`, dav(`${folder}/notes.txt.part`)]);
    expect(moved.status).toBe(201);
    for (const noise of ['._notes.txt', '.DS_Store', 'Thumbs.db', '~$draft.docx']) {
      expect((await curl([...alice, '-T', '-', dav(`${folder}/${encodeURIComponent(noise)}`)], 'noise')).status).toBe(201);
    }
    expect(await listing('alice@example.org', folder)).toEqual(['._notes.txt', '.DS_Store', 'Thumbs.db', 'chunked.bin', 'notes.txt', 'report.bin', '~$draft.docx'].sort());
    const sizes = await curl([...alice, '-X', 'PROPFIND', '-H', 'Depth: 0', dav(`${folder}/report.bin`)]);
    expect(sizes.body).toContain(`<D:getcontentlength>${data.length}</D:getcontentlength>`);
    // The trigger file sends the folder: one delivery, one mail.
    expect((await curl([...alice, '-T', '-', dav(`${folder}/.ready`)], '')).status).toBe(201);
    await smtp.waitFor('bob@example.org', 'delivery_ready');
    expect(await listing('alice@example.org', folder)).toEqual([]);
    const [box] = await listing('bob@example.org', '/inbox');
    expect(box).toMatch(/^\d{4}-\d{2}-\d{2} Files from alice@example\.org \[[0-9a-f]{8}\]\/$/);
    expect(await listing('bob@example.org', `/inbox/${box}`)).toEqual(['chunked.bin.pgp', 'notes.txt.pgp', 'report.bin.pgp']);
    const pgp = path.join(files, 'report.bin.pgp');
    const got = await curl([...as('bob@example.org'), '-o', pgp, dav(`/inbox/${encodeURIComponent((box as string).slice(0, -1))}/report.bin.pgp`)]);
    expect(got.status).toBe(200);
    expect(sha(await gpgDecrypt('bob@example.org', SP.bob, pgp))).toBe(sha(data));
    // A range of the .pgp file (resumed downloads).
    const partFile = path.join(files, 'part.bin');
    const part = await curl([...as('bob@example.org'), '-r', '100-199', '-o', partFile, dav(`/inbox/${encodeURIComponent((box as string).slice(0, -1))}/report.bin.pgp`)]);
    expect(part.status).toBe(206);
    expect(readFileSync(partFile).equals(readFileSync(pgp).subarray(100, 200))).toBe(true);
    // /inbox is read-only.
    expect((await curl([...as('bob@example.org'), '-T', '-', dav(`/inbox/${encodeURIComponent((box as string).slice(0, -1))}/x.txt`)], 'x')).status).toBe(403);
  });

  it('works with rclone as a WebDAV client: a subject folder up, the delivered .pgp down', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const src = path.join(files, 'q.bin');
    writeFileSync(src, data);
    const url = dav('');
    const up = await rcloneDav(url, 'alice@example.org', PW, (r) => ['copyto', src, r('/outbox/bob@example.org/Quarterly/q.bin')]);
    expect(up.code, up.stderr).toBe(0);
    const trigger = await rcloneDav(url, 'alice@example.org', PW, (r) => ['touch', r('/outbox/bob@example.org/Quarterly/.ready')]);
    expect(trigger.code, trigger.stderr).toBe(0);
    await smtp.waitFor('bob@example.org', 'delivery_ready', 2);
    const boxes = await listing('bob@example.org', '/inbox');
    const box = boxes.find((b) => b.includes('Quarterly')) as string;
    expect(box).toBeTruthy();
    const out = path.join(files, 'rclone-down');
    const down = await rcloneDav(url, 'bob@example.org', PW, (r) => ['copy', r(`/inbox/${box}`), out]);
    expect(down.code, down.stderr).toBe(0);
    expect(sha(await gpgDecrypt('bob@example.org', SP.bob, path.join(out, 'q.bin.pgp')))).toBe(sha(data));
  });

  it('keeps locks and dead properties across a restart of the daemon', async () => {
    const alice = as('alice@example.org');
    const file = dav('/drop/kept.txt');
    expect((await curl([...alice, '-T', '-', file], 'v1')).status).toBe(201);
    const lock = await curl([...alice, '-i', '-X', 'LOCK', '-H', 'Timeout: Second-600', '-H', 'Content-Type: application/xml', '--data-binary', '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>', file]);
    expect(lock.status).toBe(200);
    const token = /^Lock-Token: <([^>]+)>/im.exec(lock.body)?.[1] as string;
    expect(token).toMatch(/^opaquelocktoken:[0-9a-f-]{36}$/);
    const patch = await curl([...alice, '-X', 'PROPPATCH', '-H', `If: (<${token}>)`, '--data-binary', '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test"><D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>', file]);
    expect(patch.status).toBe(207);
    await daemon.stop();
    daemon = await startDaemonProcess(sb);
    api = new Api(daemon.url);
    const refused = await curl([...alice, '-T', '-', dav('/drop/kept.txt')], 'v2');
    expect(refused.status).toBe(423);
    const prop = await curl([...alice, '-X', 'PROPFIND', '-H', 'Depth: 0', '--data-binary', '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><Z:colour xmlns:Z="urn:x-test"/><D:lockdiscovery/></D:prop></D:propfind>', dav('/drop/kept.txt')]);
    expect(prop.body).toContain('<X:colour xmlns:X="urn:x-test">blue</X:colour>');
    expect(prop.body).toContain(token);
    expect((await curl([...alice, '-T', '-', '-H', `If: (<${token}>)`, dav('/drop/kept.txt')], 'v2')).status).toBe(204);
    expect((await curl([...alice, '-X', 'UNLOCK', '-H', `Lock-Token: <${token}>`, dav('/drop/kept.txt')])).status).toBe(204);
    expect((await curl([...alice, '-X', 'DELETE', dav('/drop/kept.txt')])).status).toBe(204);
  });
});
