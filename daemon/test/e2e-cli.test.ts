/**
 * Outside-in, the way a cron job works: the `sealdrop` CLI only (server commands on the data
 * folder, client commands against the running daemon with an API token), a real SMTP listener,
 * real gpg. Token create → send (encrypted here) → the recipient registers and activates a
 * SecuPass via the API → release --all-pending → fetch --out → identical bytes; --json parses;
 * a tampered ciphertext makes fetch exit 7 without an output file; exit codes of failures.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, openSync, readSync, writeSync, closeSync, fstatSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeliveryFileSchema } from '../src/store/entities.ts';
import { openStore } from '../src/store/orm.ts';
import { Api } from './support/api.ts';
import { filesUnder, findCanaries } from './support/canary.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';
import { linkIn, SmtpCatcher } from './support/smtp.ts';

const exec = promisify(execFile);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('the CLI end to end, cron-style', () => {
  const tag = randomBytes(6).toString('hex');
  const secret = {
    alicePassword: `alice-password-${tag}`,
    bobPassword: `bob-password-${tag}`,
    aliceSecupass: `ALICE-SECUPASS-${tag}`,
    bobSecupass: `BOB-SECUPASS-${tag}`,
    fileCanary: `CLI-FILE-CANARY-${tag}`,
    textCanary: `CLI-TEXT-CANARY-${tag}`,
    messageCanary: `CLI-MESSAGE-CANARY-${tag}`,
  };
  let smtp: SmtpCatcher;
  let sb: Sandbox;
  let daemon: DaemonProcess;
  let files: string;
  const f: Record<string, string> = {};

  /** Runs a client command against the daemon. */
  const client = (args: string[], extra: Record<string, string> = {}) => runCli(sb, [...args, '--server', daemon.url], undefined, extra);

  beforeAll(async () => {
    smtp = await new SmtpCatcher().start();
    sb = sandbox({ SEALDROP_SFTP__ENABLED: 'false', SEALDROP_METRICS__ENABLED: 'false' }, smtp.port);
    daemon = await startDaemonProcess(sb);
    files = path.join(sb.dir, 'files');
    mkdirSync(files);
    const secrets = path.join(sb.dir, 'secrets-cli');
    mkdirSync(secrets, { mode: 0o700 });
    f.aliceSp = path.join(secrets, 'alice.secupass');
    f.bobSp = path.join(secrets, 'bob.secupass');
    writeFileSync(f.aliceSp, `${secret.aliceSecupass}\n`, { mode: 0o600 });
    writeFileSync(f.bobSp, `${secret.bobSecupass}\n`, { mode: 0o600 });
    f.aliceToken = path.join(secrets, 'alice.token');
    f.bobToken = path.join(secrets, 'bob.token');
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    await smtp?.stop();
    sb?.remove();
  });

  it('delivers, releases and fetches with the CLI only; --json parses; no plaintext at the daemon', async () => {
    // Server side: the member account, by an admin on the server.
    const add = await runCli(sb, ['account', 'add', '--email', 'alice@example.org', '--role', 'member', '--password-stdin'], `${secret.alicePassword}\n`);
    expect(add.code, add.stderr).toBe(0);
    // Alice activates her SecuPass once (web UI or API); the cron job then needs only the token.
    const anon = new Api(daemon.url);
    const alice = await anon.login('alice@example.org', secret.alicePassword);
    await alice.ok('POST', '/api/v1/secupass', { secupass: secret.aliceSecupass }, 201);

    const tok = await runCli(sb, ['token', 'create', '--email', 'alice@example.org', '--scopes', 'send,release,fetch', '--name', 'nightly', '--days', '7', '--out', f.aliceToken as string]);
    expect(tok.code, tok.stderr).toBe(0);
    expect(tok.stdout).toBe('');
    expect(tok.stderr).toMatch(/written to/);
    const listed = await runCli(sb, ['token', 'list', '--email', 'alice@example.org', '--json']);
    expect(JSON.parse(listed.stdout).tokens).toEqual([expect.objectContaining({ name: 'nightly', scopes: ['send', 'release', 'fetch'] })]);

    // Two files with canaries; the message goes encrypted too (level 4).
    const bin = randomBytes(3 * 1024 * 1024 + 17);
    Buffer.from(secret.fileCanary).copy(bin, 1000);
    const text = Buffer.from(`Quarterly report\n${secret.textCanary}\nÄÖÜ ✓\n`);
    writeFileSync(path.join(files, 'report.bin'), bin);
    writeFileSync(path.join(files, 'notes ÄÖÜ.txt'), text);
    writeFileSync(path.join(files, 'message.txt'), `Hello Bob, ${secret.messageCanary}`);
    const sent = await client(['send', path.join(files, 'report.bin'), path.join(files, 'notes ÄÖÜ.txt'), '--to', 'bob@example.org', '--level', '4', '--subject', 'Q3 numbers', '--message-file', path.join(files, 'message.txt'), '--json', '--token-file', f.aliceToken as string]);
    expect(sent.code, sent.stderr).toBe(0);
    const delivery = JSON.parse(sent.stdout).delivery as { id: string; state: string; level: number; files: Array<{ name: string; size: number }>; recipients: Array<{ email: string; state: string }> };
    expect(delivery).toMatchObject({ state: 'sent', level: 4, hasMessage: true });
    expect(delivery.files.map((x) => [x.name, x.size]).sort()).toEqual([['notes ÄÖÜ.txt', text.length], ['report.bin', bin.length]]);
    expect(delivery.recipients).toEqual([expect.objectContaining({ email: 'bob@example.org', state: 'awaiting_registration' })]);

    // Nothing to release yet: exit 0 and an empty list.
    const early = await client(['release', '--all-pending', '--json', '--token-file', f.aliceToken as string, '--secupass-file', f.aliceSp as string]);
    expect(early.code, early.stderr).toBe(0);
    expect(JSON.parse(early.stdout)).toEqual({ releases: [] });

    // The recipient registers from the invitation and activates the SecuPass via the API.
    const invitation = await smtp.waitFor('bob@example.org', 'invitation');
    const regToken = linkIn(invitation, 'http://127.0.0.1:8080/register').searchParams.get('token') as string;
    await anon.ok('POST', '/api/v1/registration', { token: regToken, password: secret.bobPassword }, 201);
    const bob = await anon.login('bob@example.org', secret.bobPassword);
    await bob.ok('POST', '/api/v1/secupass', { secupass: secret.bobSecupass }, 201);
    await smtp.waitFor('alice@example.org', 'release_needed').catch(() => undefined);

    const status = await client(['status', delivery.id, '--json', '--token-file', f.aliceToken as string]);
    expect(JSON.parse(status.stdout).delivery.recipients[0].state).toBe('awaiting_release');

    const rel = await client(['release', '--all-pending', '--json', '--token-file', f.aliceToken as string, '--secupass-file', f.aliceSp as string]);
    expect(rel.code, rel.stderr).toBe(0);
    const releases = JSON.parse(rel.stdout).releases as Array<{ deliveryId: string; released: Array<{ email: string }> }>;
    expect(releases).toEqual([{ deliveryId: delivery.id, released: [expect.objectContaining({ email: 'bob@example.org' })], skipped: [] }]);

    // Bob's cron job: a fetch-only token, made on the server; the SecuPass from the environment.
    const bobTok = await runCli(sb, ['token', 'create', '--email', 'bob@example.org', '--scopes', 'fetch', '--out', f.bobToken as string]);
    expect(bobTok.code, bobTok.stderr).toBe(0);
    const inbox = await client(['deliveries', '--json', '--token-file', f.bobToken as string]);
    expect(JSON.parse(inbox.stdout).deliveries.map((d: { id: string; recipients: Array<{ state: string }> }) => [d.id, d.recipients[0]?.state])).toEqual([[delivery.id, 'available']]);
    const out = path.join(sb.dir, 'fetched');
    const got = await client(['fetch', '--out', out, '--json', '--token-file', f.bobToken as string], { SEALDROP_SECUPASS: secret.bobSecupass });
    expect(got.code, got.stderr).toBe(0);
    const report = JSON.parse(got.stdout).deliveries as Array<{ id: string; files: Array<{ name: string; path: string; size: number }> }>;
    expect(report.map((d) => d.id)).toEqual([delivery.id]);
    const dir = path.join(out, delivery.id);
    expect(sha(readFileSync(path.join(dir, 'report.bin')))).toBe(sha(bin));
    expect(readFileSync(path.join(dir, 'notes ÄÖÜ.txt'))).toEqual(text);
    expect(readFileSync(path.join(dir, 'message.txt'), 'utf8')).toBe(`Hello Bob, ${secret.messageCanary}`);
    expect(readdirSync(dir).sort()).toEqual(['message.txt', 'notes ÄÖÜ.txt', 'report.bin']);
    // Fetched, so nothing new: a second run fetches nothing.
    const again = await client(['fetch', '--out', out, '--json', '--token-file', f.bobToken as string], { SEALDROP_SECUPASS: secret.bobSecupass });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ deliveries: [] });

    // The daemon never held the plaintext: not in its data folder, logs, output or TMPDIR.
    const hits = findCanaries(filesUnder(sb.dataDir, sb.tmpDir, sb.logFile), { file: secret.fileCanary, text: secret.textCanary, message: secret.messageCanary, aliceSecupass: secret.aliceSecupass, bobSecupass: secret.bobSecupass }, { output: Buffer.from(daemon.output()) });
    expect(hits).toEqual([]);
  }, 120_000);

  it('exports the key for GnuPG 2.2, which imports it and decrypts a download', async () => {
    const keyFile = path.join(sb.dir, 'bob-key.asc');
    const r = await client(['key', 'export', '--gnupg', '--out', keyFile, '--token-file', f.bobToken as string, '--secupass-file', f.bobSp as string]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^-----BEGIN PGP PRIVATE KEY BLOCK-----/);
    const home = path.join(sb.dir, 'gnupg');
    mkdirSync(home, { mode: 0o700 });
    const gpg = (args: string[]) => exec('gpg', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase-file', f.bobSp as string, ...args]);
    try {
      await gpg(['--import', keyFile]);
      const { stdout } = await gpg(['--list-secret-keys', '--with-colons']);
      expect(stdout).toMatch(/^sec:/m);
      // A raw .pgp download (API), decrypted by gpg with the exported key.
      const api = new Api(daemon.url, readFileSync(f.bobToken as string, 'utf8').trim());
      const { deliveries } = await api.ok<{ deliveries: Array<{ id: string; files: Array<{ id: string; name: string }> }> }>('GET', '/api/v1/deliveries?box=inbox');
      const d = deliveries[0] as { id: string; files: Array<{ id: string; name: string }> };
      const file = d.files.find((x) => x.name === 'notes ÄÖÜ.txt') as { id: string };
      const res = await fetch(`${daemon.url}/api/v1/deliveries/${d.id}/files/${file.id}`, { headers: { authorization: `Bearer ${api.token}` } });
      const pgp = path.join(sb.dir, 'notes.pgp');
      writeFileSync(pgp, Buffer.from(await res.arrayBuffer()));
      await gpg(['--output', `${pgp}.out`, '--decrypt', pgp]);
      expect(readFileSync(`${pgp}.out`, 'utf8')).toContain(secret.textCanary);
    } finally {
      await exec('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']).catch(() => undefined);
    }
  }, 60_000);

  it('exits 7 and writes no file when the ciphertext was tampered with', async () => {
    const api = new Api(daemon.url, readFileSync(f.bobToken as string, 'utf8').trim());
    const { deliveries } = await api.ok<{ deliveries: Array<{ id: string }> }>('GET', '/api/v1/deliveries?box=inbox');
    const id = (deliveries[0] as { id: string }).id;
    // Flip one byte in the middle of report.bin's blob.
    const orm = await openStore({ driver: 'sqlite', sqlitePath: path.join(sb.dataDir, 'sealdrop.db') });
    let blobKey: string;
    try {
      const row = await orm.em.fork().findOneOrFail(DeliveryFileSchema, { deliveryId: id, name: 'report.bin' });
      blobKey = row.blobKey as string;
    } finally {
      await orm.close();
    }
    const blob = path.join(sb.dataDir, 'blobs', blobKey.slice(0, 2), blobKey.slice(2, 4), blobKey);
    const fd = openSync(blob, 'r+');
    const at = Math.floor(fstatSync(fd).size / 2);
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] = (b[0] as number) ^ 0x01;
    writeSync(fd, b, 0, 1, at);
    closeSync(fd);

    const out = path.join(sb.dir, 'tampered');
    const r = await client(['fetch', id, '--out', out, '--json', '--token-file', f.bobToken as string, '--secupass-file', f.bobSp as string]);
    expect(r.code, r.stderr).toBe(7);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'SEALDROP_E_INTEGRITY', exitCode: 7 });
    const left = existsSync(path.join(out, id)) ? readdirSync(path.join(out, id)) : [];
    expect(left.filter((n) => n.startsWith('report.bin'))).toEqual([]);
    expect(left.filter((n) => n.endsWith('.partial'))).toEqual([]);
  }, 60_000);

  it('maps failures to the documented exit codes', async () => {
    const bad = path.join(sb.dir, 'bad.token');
    writeFileSync(bad, 'sda_thisIsNotAValidTokenAtAll1234567890', { mode: 0o600 });
    expect((await client(['deliveries', '--token-file', bad])).code).toBe(3);
    expect((await client(['status', '00000000-0000-4000-8000-000000000000', '--token-file', f.bobToken as string])).code).toBe(4);
    const offline = await runCli(sb, ['deliveries', '--server', 'http://127.0.0.1:1', '--token-file', f.bobToken as string]);
    expect(offline.code).toBe(6);
    expect(offline.stderr).toContain('cannot reach http://127.0.0.1:1');
    const arg = await client(['release', '--all-pending', '--secupass', 'x', '--token-file', f.aliceToken as string]);
    expect(arg.code).toBe(2);
    expect(arg.stderr).toContain('never given as an argument');
    const wrong = path.join(sb.dir, 'wrong.secupass');
    writeFileSync(wrong, 'not the secupass at all', { mode: 0o600 });
    const sentAgain = await client(['send', path.join(files, 'message.txt'), '--to', 'bob@example.org', '--token-file', f.aliceToken as string, '--quiet']);
    expect(sentAgain.code, sentAgain.stderr).toBe(0);
    const fetchWrong = await client(['fetch', '--out', path.join(sb.dir, 'w'), '--token-file', f.bobToken as string, '--secupass-file', wrong]);
    expect(fetchWrong.code).toBe(3);
    expect(fetchWrong.stderr).toContain('SEALDROP_E_WRONG_SECUPASS');
    // A service-scoped token cannot fetch: auth (scope).
    const aliceSendOnly = path.join(sb.dir, 'alice-send.token');
    expect((await runCli(sb, ['token', 'create', '--email', 'alice@example.org', '--scopes', 'send', '--out', aliceSendOnly])).code).toBe(0);
    expect((await client(['fetch', '--out', path.join(sb.dir, 'x'), '--token-file', aliceSendOnly])).code).toBe(3);
    expect((await client(['send', '/nonexistent/file', '--to', 'bob@example.org', '--token-file', f.aliceToken as string])).code).toBe(4);
  }, 60_000);

  it('runs the admin commands: audit verify, expire, disable, secupass reset', async () => {
    const audit = await runCli(sb, ['audit', 'verify', '--json']);
    expect(audit.code, audit.stderr).toBe(0);
    expect(JSON.parse(audit.stdout)).toMatchObject({ ok: true });
    expect(JSON.parse(audit.stdout).events).toBeGreaterThan(10);
    const expire = await runCli(sb, ['expire', '--json']);
    expect(expire.code, expire.stderr).toBe(0);
    expect(Object.keys(JSON.parse(expire.stdout)).sort()).toEqual(['accountTokens', 'apiTokens', 'emptyFolders', 'expiredDeliveries', 'mailFiles', 'orphanBlobs', 'sessions', 'tempBlobs']);
    const noTty = await runCli(sb, ['secupass', 'reset', 'bob@example.org']);
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toContain('--yes');
    const reset = await runCli(sb, ['secupass', 'reset', 'bob@example.org', '--yes']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/key [0-9a-f]{40} destroyed; [1-9]\d* delivery access/);
    // Bob's key is gone: his fetch now fails with a wrong-state exit code, the release too.
    const lost = JSON.parse((await client(['deliveries', '--json', '--token-file', f.bobToken as string])).stdout).deliveries as Array<{ id: string; recipients: Array<{ state: string }> }>;
    expect(lost.map((d) => d.recipients[0]?.state)).toEqual(['access_lost', 'access_lost']);
    const after = await client(['fetch', lost[0]?.id as string, '--out', path.join(sb.dir, 'after'), '--token-file', f.bobToken as string, '--secupass-file', f.bobSp as string]);
    expect(after.code, after.stderr).toBe(5);
    expect(after.stderr).toContain('SEALDROP_E_ACCESS_LOST');
    // A revoked token stops working at once.
    const spare = path.join(sb.dir, 'spare.token');
    expect((await runCli(sb, ['token', 'create', '--email', 'alice@example.org', '--scopes', 'fetch', '--name', 'spare', '--out', spare])).code).toBe(0);
    expect((await client(['deliveries', '--token-file', spare])).code).toBe(0);
    const tokens = JSON.parse((await runCli(sb, ['token', 'list', '--email', 'alice@example.org', '--json'])).stdout).tokens as Array<{ id: string; name: string }>;
    const spareId = tokens.find((t) => t.name === 'spare')?.id as string;
    expect((await runCli(sb, ['token', 'revoke', spareId])).code).toBe(0);
    expect((await client(['deliveries', '--token-file', spare])).code).toBe(3);
    expect((await runCli(sb, ['token', 'revoke', '00000000-0000-4000-8000-000000000000'])).code).toBe(4);
    // Invitations: a new address is invited; an unregistered one is invited again; a registered one is refused.
    const inv = await runCli(sb, ['account', 'invite', 'gina@example.org']);
    expect([inv.code, inv.stdout]).toEqual([0, expect.stringContaining('invited gina@example.org (member)')]);
    const again = await runCli(sb, ['account', 'invite', 'gina@example.org']);
    expect([again.code, again.stdout]).toEqual([0, expect.stringContaining('sent again')]);
    await smtp.waitFor('gina@example.org', 'invitation', 2);
    expect((await runCli(sb, ['account', 'invite', 'alice@example.org'])).code).toBe(5);
    const dis = await runCli(sb, ['account', 'disable', 'bob@example.org']);
    expect(dis.code, dis.stderr).toBe(0);
    expect((await client(['deliveries', '--token-file', f.bobToken as string])).code).toBe(3);
    expect((await runCli(sb, ['account', 'disable', 'nobody@example.org'])).code).toBe(4);
  }, 60_000);
});
