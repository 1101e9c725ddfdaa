/**
 * Past one machine: two daemon processes on one PostgreSQL database and one blob folder (and
 * one key-encryption key), a real SMTP listener. Upload on A, registration and SecuPass on B,
 * release on A, download on B; a WebDAV lock taken on A holds on B; an idle-timer delivery is
 * sent once with both running; 200 notifications queued while both run arrive once each; and
 * A killed with SIGKILL while sending mail and receiving an upload loses no mail and leaves no
 * partial upload once B has run its recovery. An SFTP session ending on A does not send while the
 * account still has one open on B; B's clean end does.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { knex } from '@mikro-orm/knex';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api } from './support/api.ts';
import { curl } from './support/dav.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';
import { createTestDatabase, postgresEnv, type TestDatabase } from './support/postgres.ts';
import { q, requireSftpTools, sftpBatch, sftpSession } from './support/sftp.ts';
import { linkIn, SmtpCatcher } from './support/smtp.ts';
import { delay, until } from './support/wait.ts';

const PASSWORD = 'alice password long enough';
const SECUPASS = 'alice secupass long enough';

describe('two daemon instances on one PostgreSQL database and one blob folder', () => {
  let db: TestDatabase;
  let smtp: SmtpCatcher;
  let sbA: Sandbox;
  let sbB: Sandbox;
  let a: DaemonProcess;
  let b: DaemonProcess;
  let sharedBlobs: string;
  let sql: ReturnType<typeof knex>;

  const common = () => ({
    ...postgresEnv(db.url),
    SEALDROP_TREE__IDLE_SEND_SECONDS: '3',
    SEALDROP_DELIVERIES__EXPIRY_SWEEP_SECONDS: '1',
    SEALDROP_STORAGE__ORPHAN_GRACE_SECONDS: '2',
    SEALDROP_MAIL__CLAIM_SECONDS: '5',
    SEALDROP_MAIL__POLL_INTERVAL_MS: '100',
  });

  beforeAll(async () => {
    await requireSftpTools();
    db = await createTestDatabase();
    sql = knex({ client: 'pg', connection: db.url, pool: { min: 0, max: 2 } });
    smtp = await new SmtpCatcher().start();
    sbA = sandbox(common(), smtp.port);
    sharedBlobs = path.join(sbA.dir, 'shared-blobs');
    mkdirSync(sharedBlobs);
    sbA.env.SEALDROP_STORAGE__BLOB_DIR = sharedBlobs;
    // B: its own working folder, the same database, blob folder and key-encryption key.
    sbB = sandbox({ ...common(), SEALDROP_STORAGE__BLOB_DIR: sharedBlobs, SEALDROP_CRYPTO__KEK_FILE: sbA.kekFile }, smtp.port);
    const add = await runCli(sbA, ['account', 'add', '--email', 'alice@example.org', '--role', 'member', '--password-stdin'], `${PASSWORD}\n`);
    expect(add.code, add.stderr).toBe(0);
    a = await startDaemonProcess(sbA);
    b = await startDaemonProcess(sbB);
  }, 120_000);

  afterAll(async () => {
    await a?.kill();
    await b?.kill();
    await sql?.destroy();
    await smtp?.stop();
    await db?.drop();
    sbA?.remove();
    sbB?.remove();
  });

  it('uploads on A, registers on B, releases on A, downloads on B', async () => {
    const aliceA = await new Api(a.url).login('alice@example.org', PASSWORD);
    await aliceA.ok('POST', '/api/v1/secupass', { secupass: SECUPASS }, 201);
    const content = randomBytes(300_000);
    const { delivery } = await aliceA.ok<{ delivery: { id: string } }>('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: 'across', level: 3 }, 201);
    await aliceA.ok('PUT', `/api/v1/deliveries/${delivery.id}/files/data.bin`, content, 201);
    await aliceA.ok('POST', `/api/v1/deliveries/${delivery.id}/send`);

    const invitation = await smtp.waitFor('bob@example.org', 'invitation');
    const token = linkIn(invitation, 'http://127.0.0.1:8080/register').searchParams.get('token') as string;
    await new Api(b.url).ok('POST', '/api/v1/registration', { token, password: 'bob password long enough' }, 201);
    const bobB = await new Api(b.url).login('bob@example.org', 'bob password long enough');
    await bobB.ok('POST', '/api/v1/secupass', { secupass: 'bob secupass long enough' }, 201);

    // A session token made on A works on B: sessions live in the database.
    await new Api(b.url, aliceA.token).ok('GET', '/api/v1/me');
    await aliceA.ok('POST', `/api/v1/deliveries/${delivery.id}/release`, { secupass: SECUPASS });

    const got = await bobB.ok<{ delivery: { files: Array<{ id: string }> } }>('GET', `/api/v1/deliveries/${delivery.id}`);
    const res = await fetch(`${b.url}/api/v1/deliveries/${delivery.id}/files/${got.delivery.files[0]?.id}`, { headers: { authorization: `Bearer ${bobB.token}` } });
    expect(res.status).toBe(200);
    const pgp = new Uint8Array(await res.arrayBuffer());
    const { key } = await bobB.ok<{ key: { privateKey: string } }>('GET', '/api/v1/secupass/key');
    const privateKey = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: key.privateKey }), passphrase: 'bob secupass long enough' });
    const { data } = await openpgp.decrypt({ message: await openpgp.readMessage({ binaryMessage: pgp }), decryptionKeys: privateKey, format: 'binary' });
    expect(Buffer.from(data as Uint8Array).equals(content)).toBe(true);
  }, 60_000);

  it('enforces a WebDAV lock taken on A on B', async () => {
    const auth = ['-u', `alice@example.org:${PASSWORD}`];
    const file = '/dav/outbox/carol@example.org/locked.txt';
    const lock = await curl([...auth, '-i', '-X', 'LOCK', '-H', 'Timeout: Second-600', '-H', 'Content-Type: application/xml', '--data-binary', '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>A</D:owner></D:lockinfo>', `${a.url}${file}`]);
    expect([200, 201]).toContain(lock.status);
    const token = /lock-token:\s*<([^>]+)>/i.exec(lock.body)?.[1] as string;
    expect(token).toMatch(/^opaquelocktoken:/);
    expect((await curl([...auth, '-X', 'PUT', '--data-binary', 'from B without the token', `${b.url}${file}`])).status).toBe(423);
    expect((await curl([...auth, '-X', 'DELETE', `${b.url}${file}`])).status).toBe(423);
    expect([201, 204]).toContain((await curl([...auth, '-X', 'PUT', '-H', `If: (<${token}>)`, '--data-binary', 'from B with the token', `${b.url}${file}`])).status);
    expect((await curl([...auth, '-X', 'UNLOCK', '-H', `Lock-Token: <${token}>`, `${b.url}${file}`])).status).toBe(204);
    expect([201, 204]).toContain((await curl([...auth, '-X', 'PUT', '--data-binary', 'unlocked', `${a.url}${file}`])).status);
  }, 60_000);

  it('sends an idle-timer delivery exactly once with both instances running', async () => {
    const auth = ['-u', `alice@example.org:${PASSWORD}`];
    expect((await curl([...auth, '-T', '-', `${a.url}/dav/outbox/dave@example.org/idle.txt`], 'idle content')).status).toBe(201);
    await smtp.waitFor('dave@example.org', 'invitation');
    await delay(4000); // more idle sweeps on both instances
    expect(smtp.to('dave@example.org')).toHaveLength(1);
    const sent = await sql('audit_event').where({ action: 'folder.sent' }).whereRaw("data::text like '%dave@example.org%'");
    expect(sent).toHaveLength(1);
  }, 60_000);

  it('sends each of 200 notifications queued while both run exactly once', async () => {
    const aliceA = await new Api(a.url).login('alice@example.org', PASSWORD);
    const aliceB = new Api(b.url, aliceA.token);
    const addresses: string[] = [];
    for (let d = 0; d < 4; d++) {
      const to = Array.from({ length: 50 }, (_, i) => `n${d}-${i}@example.org`);
      addresses.push(...to);
      const api = d % 2 === 0 ? aliceA : aliceB;
      const { delivery } = await api.ok<{ delivery: { id: string } }>('POST', '/api/v1/deliveries', { to, subject: `batch ${d}`, level: 2, message: 'hello' }, 201);
      await api.ok('POST', `/api/v1/deliveries/${delivery.id}/send`);
    }
    const count = () => smtp.mails.filter((m) => m.to.some((t) => t.startsWith('n') && t.endsWith('@example.org') && /^n\d-\d+@/.test(t))).length;
    await until('200 mails', () => count() >= 200, 60_000);
    await delay(1500);
    expect(count()).toBe(200);
    for (const addr of addresses) expect(smtp.to(addr), addr).toHaveLength(1);
    // Every row of the shared outbox is marked sent.
    const rows = await sql('outbox_message').whereIn('to', addresses).select('state');
    expect(rows.every((r: { state: string }) => r.state === 'sent')).toBe(true);
  }, 120_000);

  it('sends at the last clean SFTP session end of the account, counting sessions on both instances', async () => {
    const auth = { user: 'alice@example.org', password: PASSWORD };
    const onB = sftpSession(b.sftpPort, auth);
    await onB.ready;
    const local = path.join(sbA.tmpDir, 'via-sftp.txt');
    writeFileSync(local, 'sent when the last session ends');
    const put = await sftpBatch(a.sftpPort, auth, [`put ${q(local)} ${q('/outbox/frank@example.org/via-sftp.txt')}`]);
    expect(put.code, put.stderr).toBe(0);
    // A's session ended cleanly, but B still has one of the account's sessions open.
    await delay(1000);
    const open = await sql('delivery').where({ folder_key: 'outbox/frank@example.org' }).select('state');
    expect(open.map((r: { state: string }) => r.state)).toEqual(['open']);
    expect(smtp.to('frank@example.org')).toHaveLength(0);
    expect(await onB.end()).toBe(0);
    await smtp.waitFor('frank@example.org', 'invitation');
    const sent = await sql('delivery').where({ folder_key: 'outbox/frank@example.org' }).select('state');
    expect(sent.map((r: { state: string }) => r.state)).toEqual(['sent']);
    // Sent by the session end (not by the idle timer, which is on in this test). The audit row
    // is written just after the send commits, so the mail can arrive before it.
    const reasons = async () => (await sql('audit_event').where({ action: 'folder.sent' }).whereRaw("data::text like '%frank@example.org%'").select('data')).map((r: { data: { reason: string } }) => r.data.reason);
    await until('the folder.sent audit row', async () => (await reasons()).length > 0, 10_000);
    expect(await reasons()).toEqual(['session_end']);
  }, 60_000);

  it('loses no mail and leaves no partial upload when A is killed mid-way, once B has recovered', async () => {
    const aliceA = await new Api(a.url).login('alice@example.org', PASSWORD);
    // B must not take A's mail before the crash: stop it (gracefully) and restart it after.
    await b.stop();
    // An upload into a folder, slow enough to be cut.
    const big = path.join(sbA.tmpDir, 'big.bin');
    writeFileSync(big, randomBytes(30 * 1024 * 1024));
    const upload = new Promise<void>((resolve) => {
      const child = spawn('curl', ['-sS', '-o', '/dev/null', '-u', `alice@example.org:${PASSWORD}`, '-T', big, '--limit-rate', '2M', `${a.url}/dav/outbox/erin@example.org/big.bin`], { stdio: 'ignore' });
      child.on('close', () => resolve());
    });
    await until('the upload to reach the blob folder', () => readdirSync(path.join(sharedBlobs, 'tmp')).length > 0);
    smtp.delayMs = 300; // a slow relay: A is in the middle of the outbox when it dies
    const addresses: string[] = [];
    for (let d = 0; d < 2; d++) {
      const to = Array.from({ length: 50 }, (_, i) => `k${d}-${i}@example.org`);
      addresses.push(...to);
      const { delivery } = await aliceA.ok<{ delivery: { id: string } }>('POST', '/api/v1/deliveries', { to, subject: `kill ${d}`, level: 2, message: 'hi' }, 201);
      await aliceA.ok('POST', `/api/v1/deliveries/${delivery.id}/send`);
    }
    const kMails = () => smtp.mails.filter((m) => m.to.some((t) => /^k\d-\d+@/.test(t))).length;
    await until('A to start sending', () => kMails() >= 3);
    await a.kill();
    await upload;
    const atKill = kMails();
    expect(atKill).toBeLessThan(100);
    expect(readdirSync(path.join(sharedBlobs, 'tmp')).length).toBeGreaterThan(0);

    // B comes back: after A's claims lapse (mail.claimSeconds) it sends the rest; its retention
    // run removes A's temporary blob and the empty folder delivery once the grace has passed.
    smtp.delayMs = 0;
    b = await startDaemonProcess(sbB);
    await until('every mail at least once', () => addresses.every((addr) => smtp.to(addr).length >= 1), 60_000);
    // At-least-once: only a mail in flight at the crash may have gone twice.
    const twice = addresses.filter((addr) => smtp.to(addr).length > 1);
    expect(twice.length).toBeLessThanOrEqual(10);
    await until('the temporary blob to be removed', () => readdirSync(path.join(sharedBlobs, 'tmp')).length === 0, 30_000);
    await until('the empty folder delivery to be removed', async () => (await sql('delivery').where({ folder_key: 'outbox/erin@example.org' })).length === 0, 30_000);
    expect(await sql('delivery_file').where({ name: 'big.bin' })).toHaveLength(0);
    // Blobs on disk are exactly those files refer to.
    const referenced = new Set((await sql('delivery_file').whereNotNull('blob_key').select('blob_key')).map((r: { blob_key: string }) => r.blob_key));
    const onDisk = readdirSync(sharedBlobs, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && !e.parentPath.endsWith('tmp'))
      .map((e) => e.name);
    expect(new Set(onDisk)).toEqual(referenced);
  }, 180_000);
});
