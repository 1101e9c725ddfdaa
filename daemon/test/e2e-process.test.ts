/**
 * Outside-in: the real daemon on free ports, a real SMTP listener, HTTP only (fetch and curl),
 * real gpg. Walks the whole level-3/4 process for a recipient without an account, with the
 * release done server-side in one run and client-side (release-material + wraps) in the other,
 * then resets, re-release, the sender's reset, levels 1 and 2, and a canary scan for leaks;
 * each on SQLite and on PostgreSQL.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../src/store/orm.ts';
import { clientWraps } from './support/release.ts';
import { Api, curlDownload, curlUpload } from './support/api.ts';
import { filesUnder, findCanaries } from './support/canary.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';
import { GpgKeyring } from './support/gpg.ts';
import { createTestDatabase, dumpDatabase, postgresEnv, type TestDatabase } from './support/postgres.ts';
import { linkIn, SmtpCatcher } from './support/smtp.ts';

const MiB = 1024 * 1024;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes `size` random bytes with the canary at the start, middle and end. */
function bigFile(file: string, size: number, canary: string): string {
  const fd = openSync(file, 'w');
  const hash = createHash('sha256');
  const c = Buffer.from(canary);
  for (let off = 0; off < size; off += MiB) {
    const chunk = randomBytes(Math.min(MiB, size - off));
    if (off === 0 || off === Math.floor(size / 2 / MiB) * MiB) c.copy(chunk, 100);
    if (off + chunk.length === size) c.copy(chunk, chunk.length - c.length);
    hash.update(chunk);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  return hash.digest('hex');
}

const VARIANTS = DIALECTS.flatMap((dialect) => (['server', 'client'] as const).map((mode) => ({ dialect, mode })));

describe.each(VARIANTS)('the whole process over HTTP on $dialect, $mode-side release', ({ dialect, mode }) => {
  const tag = randomBytes(6).toString('hex');
  const secret = {
    alicePassword: `alice-password-${tag}`,
    adminPassword: `admin-password-${tag}`,
    newPassword: `new-password-${tag}`,
    bobPassword: `bob-password-${tag}`,
    aliceSecupass: `ALICE-SECUPASS-${tag}`,
    newSecupass: `NEW-SECUPASS-${tag}`,
    newSecupass2: `NEW-SECUPASS-TWO-${tag}`,
    bobSecupass: `BOB-SECUPASS-${tag}`,
    fileCanary: `FILE-CANARY-${tag}`,
    smallCanary: `SMALL-CANARY-${tag}`,
    messageCanary: `MESSAGE-CANARY-${tag}`,
    level2Canary: `LEVEL2-CANARY-${tag}`,
  };
  const tokens: Record<string, string> = {};
  const linkTokens: Record<string, string> = {};
  let smtp: SmtpCatcher;
  let db: TestDatabase | undefined;
  let sb: Sandbox;
  let daemon: DaemonProcess;
  let anon: Api;

  beforeAll(async () => {
    smtp = await new SmtpCatcher().start();
    db = dialect === 'postgresql' ? await createTestDatabase() : undefined;
    sb = sandbox(db ? postgresEnv(db.url) : {}, smtp.port);
    for (const [email, role, pw] of [
      ['admin@example.org', 'admin', secret.adminPassword],
      ['alice@example.org', 'member', secret.alicePassword],
      ['bob@example.org', 'member', secret.bobPassword],
    ] as const) {
      const r = await runCli(sb, ['account', 'add', '--email', email, '--role', role, '--password-stdin'], `${pw}\n`);
      expect(r, r.stderr).toMatchObject({ code: 0 });
    }
    daemon = await startDaemonProcess(sb);
    anon = new Api(daemon.url);
  });

  afterAll(async () => {
    const code = await daemon?.stop();
    expect(code).toBe(0);
    await smtp?.stop();
    await db?.drop();
    sb?.remove();
  });

  it('delivers, releases, resets, re-releases and leaks nothing', async () => {
    const files = path.join(sb.dir, 'files');
    const downloads = path.join(sb.dir, 'downloads');
    mkdirSync(files);
    mkdirSync(downloads);
    const bigPath = path.join(files, 'big.bin');
    const bigSha = bigFile(bigPath, 50 * MiB, secret.fileCanary);
    const smallPath = path.join(files, 'small.txt');
    const small = Buffer.from(`Dear recipient,\n${secret.smallCanary}\nÄÖÜ ✓\n`);
    (await import('node:fs')).writeFileSync(smallPath, small);

    // The member activates the SecuPass (server-side key generation).
    const alice = await anon.login('alice@example.org', secret.alicePassword);
    tokens.aliceSession = alice.token as string;
    const aliceKey = await alice.ok<{ key: { fingerprint: string } }>('POST', '/api/v1/secupass', { secupass: secret.aliceSecupass }, 201);
    expect(aliceKey.key.fingerprint).toMatch(/^[0-9a-f]{40}$/);
    // An API token with the send scope does the upload, like a cron job would.
    const created = await alice.ok<{ token: string; scopes: string[] }>('POST', '/api/v1/tokens', { name: 'cron', scopes: ['send', 'release'], expiresInDays: 7 }, 201);
    tokens.aliceApi = created.token;
    const cron = anon.as(created.token);

    // Level 4 delivery of two files to an address without an account.
    const { id } = await cron.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['new@example.org'], subject: `Contract ${tag}`, message: `Hello ${secret.messageCanary}`, level: 4 }, 201);
    const up1 = await curlUpload(cron, `/api/v1/deliveries/${id}/files/${encodeURIComponent('big data.bin')}`, bigPath);
    expect(up1.status, JSON.stringify(up1.body)).toBe(201);
    expect((up1.body.file as { size: number }).size).toBe(50 * MiB);
    const up2 = await curlUpload(cron, `/api/v1/deliveries/${id}/files/${encodeURIComponent('Brief ÄÖÜ.txt')}`, smallPath);
    expect(up2.status).toBe(201);
    const sent = await cron.ok<{ delivery: { recipients: Array<{ state: string }> } }>('POST', `/api/v1/deliveries/${id}/send`);
    expect(sent.delivery.recipients[0]?.state).toBe('awaiting_registration');

    // The invitation arrives with a working link; no file name, no message text.
    const invitation = await smtp.waitFor('new@example.org', 'invitation');
    for (const leak of ['big data.bin', 'Brief', secret.messageCanary]) expect(invitation.raw).not.toContain(leak);
    const regLink = linkIn(invitation, `${'http://127.0.0.1:8080'}/register`);
    const regToken = regLink.searchParams.get('token') as string;
    linkTokens.invitation = regToken;
    // The link opens the registration page (the token moves into a cookie and leaves the URL).
    const pageRes = await fetch(`${daemon.url}${regLink.pathname}${regLink.search}`, { redirect: 'manual' });
    expect(pageRes.status).toBe(302);
    const regCookie = (pageRes.headers.get('set-cookie') ?? '').split(';')[0] as string;
    expect(regCookie).toMatch(/^sd_reg=sdi_/);
    const form = await fetch(`${daemon.url}/register`, { headers: { cookie: regCookie } });
    expect(await form.text()).toContain('name="confirm"');
    await anon.fails('POST', '/api/v1/registration', { token: regToken, password: 'short' }, 400, 'SEALDROP_E_PASSWORD_POLICY');
    if (mode === 'server') {
      await anon.ok('POST', '/api/v1/registration', { token: regToken, password: secret.newPassword }, 201);
    } else {
      const posted = await fetch(`${daemon.url}/register`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: regCookie }, body: new URLSearchParams({ password: secret.newPassword, confirm: secret.newPassword }).toString(), redirect: 'manual' });
      expect([posted.status, posted.headers.get('location')]).toEqual([302, '/login?registered=1']);
    }
    await anon.fails('POST', '/api/v1/registration', { token: regToken, password: secret.newPassword }, 400, 'SEALDROP_E_TOKEN_INVALID');
    const newbie = await anon.login('new@example.org', secret.newPassword);
    tokens.newSession = newbie.token as string;

    const inbox = await newbie.ok<{ deliveries: Array<{ id: string; state: string; files: Array<{ id: string; name: string; size: number }>; recipients: Array<{ state: string }> }> }>('GET', '/api/v1/deliveries?box=inbox');
    expect(inbox.deliveries.map((d) => [d.id, d.recipients[0]?.state])).toEqual([[id, 'awaiting_secupass']]);
    const bigFileId = inbox.deliveries[0]?.files.find((f) => f.name === 'big data.bin')?.id as string;
    const smallFileId = inbox.deliveries[0]?.files.find((f) => f.name === 'Brief ÄÖÜ.txt')?.id as string;
    expect(inbox.deliveries[0]?.files.find((f) => f.id === bigFileId)?.size).toBe(50 * MiB);
    await newbie.fails('GET', `/api/v1/deliveries/${id}/files/${smallFileId}`, undefined, 409, 'SEALDROP_E_SECUPASS_REQUIRED');

    // The recipient activates the SecuPass: server-side in one run, a client-made key in the other.
    if (mode === 'server') {
      await newbie.ok('POST', '/api/v1/secupass', { secupass: secret.newSecupass }, 201);
    } else {
      const k = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: 'new@example.org' }], passphrase: secret.newSecupass, format: 'armored' });
      await newbie.ok('POST', '/api/v1/secupass', { publicKey: k.publicKey, privateKey: k.privateKey }, 201);
    }
    await smtp.waitFor('alice@example.org', 'release_needed');
    const notes = await alice.ok<{ notifications: Array<{ kind: string; deliveryId: string }> }>('GET', '/api/v1/notifications');
    expect(notes.notifications.some((n) => n.kind === 'release_needed' && n.deliveryId === id)).toBe(true);
    await newbie.fails('GET', `/api/v1/deliveries/${id}/files/${smallFileId}`, undefined, 403, 'SEALDROP_E_NOT_RELEASED');
    await alice.fails('POST', `/api/v1/deliveries/${id}/release`, { secupass: 'wrong secupass guess' }, 403, 'SEALDROP_E_WRONG_SECUPASS');

    const releaseClientSide = async () => {
      const material = await alice.ok<{ items: Array<{ fileId: string; ownerWrap: string }>; recipients: Array<{ recipientId: string; fingerprint: string; publicKey: string; keyChanged: boolean; registeredFrom: string | null }> }>('GET', `/api/v1/deliveries/${id}/release-material`);
      const key = await alice.ok<{ key: { privateKey: string } }>('GET', '/api/v1/secupass/key');
      const ownerKey = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: key.key.privateKey }), passphrase: secret.aliceSecupass });
      const wraps = await clientWraps(material, ownerKey);
      await alice.ok('POST', `/api/v1/deliveries/${id}/wraps`, { wraps });
      return material;
    };
    if (mode === 'server') await cron.ok('POST', `/api/v1/deliveries/${id}/release`, { secupass: secret.aliceSecupass });
    else expect((await releaseClientSide()).recipients[0]?.keyChanged).toBe(false);
    await smtp.waitFor('new@example.org', 'delivery_ready');

    // Download both files and the message; real gpg decrypts them with a copy of the key.
    const checkDownloads = async (secupass: string, round: number) => {
      const key = await newbie.ok<{ key: { privateKey: string } }>('GET', '/api/v1/secupass/key');
      const gpg = await GpgKeyring.withKey(key.key.privateKey, secupass);
      try {
        const bigOut = path.join(downloads, `big-${round}.pgp`);
        const dl = await curlDownload(newbie, `/api/v1/deliveries/${id}/files/${bigFileId}`, bigOut);
        expect(dl.status).toBe(200);
        expect(dl.headers).toMatch(/content-type: application\/pgp-encrypted/i);
        expect(dl.headers).toMatch(/filename\*=UTF-8''big%20data\.bin\.pgp/);
        expect(sha(await gpg.decrypt(bigOut))).toBe(bigSha);
        const smallOut = path.join(downloads, `small-${round}.pgp`);
        expect((await curlDownload(newbie, `/api/v1/deliveries/${id}/files/${smallFileId}`, smallOut)).status).toBe(200);
        expect((await gpg.decrypt(smallOut)).equals(small)).toBe(true);
        const msgOut = path.join(downloads, `message-${round}.pgp`);
        expect((await curlDownload(newbie, `/api/v1/deliveries/${id}/message`, msgOut)).status).toBe(200);
        expect((await gpg.decrypt(msgOut)).toString()).toBe(`Hello ${secret.messageCanary}`);
      } finally {
        await gpg.remove();
      }
    };
    await checkDownloads(secret.newSecupass, 1);
    await smtp.waitFor('alice@example.org', 'download_receipt');
    expect(readFileSync(path.join(downloads, 'big-1.pgp')).includes(Buffer.from(secret.fileCanary))).toBe(false);

    // An admin resets the recipient's SecuPass: access is lost, the owner is told.
    const admin = await anon.login('admin@example.org', secret.adminPassword);
    tokens.adminSession = admin.token as string;
    await newbie.fails('POST', `/api/v1/admin/accounts/${encodeURIComponent('new@example.org')}/secupass-reset`, undefined, 403, 'SEALDROP_E_SCOPE');
    const reset = await admin.ok<{ accessLost: number }>('POST', `/api/v1/admin/accounts/${encodeURIComponent('new@example.org')}/secupass-reset`);
    expect(reset.accessLost).toBe(1);
    await newbie.fails('GET', `/api/v1/deliveries/${id}/files/${smallFileId}`, undefined, 410, 'SEALDROP_E_ACCESS_LOST');
    await smtp.waitFor('alice@example.org', 'access_lost');
    await smtp.waitFor('new@example.org', 'secupass_reset');
    await newbie.fails('GET', '/api/v1/secupass/key', undefined, 409, 'SEALDROP_E_SECUPASS_REQUIRED');

    // A new SecuPass; the owner re-releases without uploading again and sees the key change.
    await newbie.ok('POST', '/api/v1/secupass', { secupass: secret.newSecupass2 }, 201);
    await smtp.waitFor('alice@example.org', 'release_needed', 2);
    const material = await alice.ok<{ recipients: Array<{ keyChanged: boolean }> }>('GET', `/api/v1/deliveries/${id}/release-material`);
    expect(material.recipients[0]?.keyChanged).toBe(true);
    if (mode === 'server') await alice.ok('POST', `/api/v1/deliveries/${id}/release`, { secupass: secret.aliceSecupass });
    else await releaseClientSide();
    await checkDownloads(secret.newSecupass2, 2);

    // A recipient whose SecuPass is active gets level 3 at once.
    const bob = await anon.login('bob@example.org', secret.bobPassword);
    tokens.bobSession = bob.token as string;
    await bob.ok('POST', '/api/v1/secupass', { secupass: secret.bobSecupass }, 201);
    const quick = await alice.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: 'Quick', level: 3 }, 201);
    await alice.ok('PUT', `/api/v1/deliveries/${quick.id}/files/quick.txt`, Buffer.from('quick'), 201);
    const quickSent = await alice.ok<{ delivery: { recipients: Array<{ state: string }> } }>('POST', `/api/v1/deliveries/${quick.id}/send`);
    expect(quickSent.delivery.recipients[0]?.state).toBe('available');

    // Level 2 (login) and level 1 (link) work.
    const l2 = await alice.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: 'Level 2', level: 2, message: secret.level2Canary }, 201);
    const l2file = await alice.ok<{ file: { id: string } }>('PUT', `/api/v1/deliveries/${l2.id}/files/l2.txt`, Buffer.from(`plain ${secret.level2Canary}`), 201);
    await alice.ok('POST', `/api/v1/deliveries/${l2.id}/send`);
    const l2dl = await bob.call('GET', `/api/v1/deliveries/${l2.id}/files/${l2file.file.id}`);
    expect(l2dl.status).toBe(200);
    expect(l2dl.body).toBe(`plain ${secret.level2Canary}`);
    expect((await bob.ok<{ message: string }>('GET', `/api/v1/deliveries/${l2.id}/message`)).message).toBe(secret.level2Canary);
    const l1 = await alice.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['linkuser@example.org'], subject: 'Level 1', level: 1 }, 201);
    const l1file = await alice.ok<{ file: { id: string } }>('PUT', `/api/v1/deliveries/${l1.id}/files/flyer.txt`, Buffer.from('flyer'), 201);
    await alice.ok('POST', `/api/v1/deliveries/${l1.id}/send`);
    const linkMail = await smtp.waitFor('linkuser@example.org', 'delivery_link');
    const linkToken = linkIn(linkMail, 'http://127.0.0.1:8080/link').searchParams.get('token') as string;
    linkTokens.link = linkToken;
    await anon.fails('GET', `/api/v1/links/${linkToken}/files/${l1file.file.id}`, undefined, 400, 'SEALDROP_E_INVALID_EMAIL');
    const l1dl = await anon.call('GET', `/api/v1/links/${linkToken}/files/${l1file.file.id}?email=visitor%40example.net`);
    expect([l1dl.status, l1dl.body]).toEqual([200, 'flyer']);

    // The sender's own reset: deliveries still awaiting release become unreleasable.
    const pending = await alice.ok<{ id: string }>('POST', '/api/v1/deliveries', { to: ['never@example.org'], subject: 'Pending', level: 3 }, 201);
    await alice.ok('PUT', `/api/v1/deliveries/${pending.id}/files/p.txt`, Buffer.from('p'), 201);
    await alice.ok('POST', `/api/v1/deliveries/${pending.id}/send`);
    await admin.ok('POST', `/api/v1/admin/accounts/${encodeURIComponent('alice@example.org')}/secupass-reset`);
    const after = await alice.ok<{ delivery: { recipients: Array<{ state: string }> } }>('GET', `/api/v1/deliveries/${pending.id}`);
    expect(after.delivery.recipients[0]?.state).toBe('unreleasable');
    await smtp.waitFor('never@example.org', 'unreleasable');
    // What new@ already holds stays readable: its wraps belong to its own key.
    expect((await newbie.call('GET', `/api/v1/deliveries/${id}/files/${smallFileId}`)).status).toBe(200);

    // A password reset by e-mail keeps the SecuPass.
    await anon.ok('POST', '/api/v1/password-reset', { email: 'new@example.org' }, 202);
    const resetMail = await smtp.waitFor('new@example.org', 'password_reset');
    const resetToken = linkIn(resetMail, 'http://127.0.0.1:8080/password-reset').searchParams.get('token') as string;
    linkTokens.passwordReset = resetToken;
    const newPassword2 = `${secret.newPassword}-2`;
    await anon.ok('POST', '/api/v1/password-reset/complete', { token: resetToken, password: newPassword2 }, 204);
    await newbie.fails('GET', '/api/v1/me', undefined, 401, 'SEALDROP_E_UNAUTHENTICATED');
    const newbie2 = await anon.login('new@example.org', newPassword2);
    tokens.newSession2 = newbie2.token as string;
    expect((await newbie2.call('GET', `/api/v1/deliveries/${id}/files/${smallFileId}`)).status).toBe(200);

    // Nothing secret is left anywhere: data folder, logs, TMPDIR; mails hold only their link tokens.
    await new Promise((r) => setTimeout(r, 300));
    const scanned = filesUnder(sb.dataDir, sb.tmpDir, sb.logFile);
    // SQLite: the database file is in the data folder. PostgreSQL: every row, read through SQL.
    const database: Record<string, Buffer> = db ? { 'database rows': await dumpDatabase(db.url) } : {};
    if (db) expect(database['database rows']?.includes('new@example.org')).toBe(true);
    else expect(scanned.some((f) => f.endsWith('sealdrop.db'))).toBe(true);
    expect(scanned.filter((f) => f.includes(`${path.sep}blobs${path.sep}`)).length).toBeGreaterThan(3);
    const everything = { ...secret, newPassword2, ...tokens, ...linkTokens };
    expect(findCanaries(scanned, everything, { 'daemon output': Buffer.from(daemon.output()), ...database })).toEqual([]);
    const mailLeaks = findCanaries([], { ...secret, newPassword2, ...tokens }, Object.fromEntries(smtp.mails.map((m, i) => [`mail ${i} ${m.template}`, Buffer.from(m.raw)])));
    expect(mailLeaks).toEqual([]);
  });
});
