/**
 * Outside-in over SFTP: the real daemon, the real OpenSSH `sftp` client in batch mode (password
 * via sshpass, and key auth), rclone as a second client, gpg for the downloads, a real SMTP
 * listener for the mails. Ends with the crash cases: a client killed mid-upload and the daemon
 * killed mid-upload leave no delivery, mail, blob or temp file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api } from './support/api.ts';
import { filesUnder } from './support/canary.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';
import { GpgKeyring } from './support/gpg.ts';
import { makeSshKey, q, rclone, requireSftpTools, sftpBatch, sftpBatchDetached } from './support/sftp.ts';
import { linkIn, SmtpCatcher } from './support/smtp.ts';
import { delay, until } from './support/wait.ts';

const MiB = 1024 * 1024;
const PW = 'sftp test password 1';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function randomFile(file: string, size: number): string {
  const fd = openSync(file, 'w');
  const hash = createHash('sha256');
  for (let off = 0; off < size; off += MiB) {
    const chunk = randomBytes(Math.min(MiB, size - off));
    hash.update(chunk);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  return hash.digest('hex');
}

let smtp: SmtpCatcher;
let sb: Sandbox;
let daemon: DaemonProcess;
let api: Api;
let files: string;
let keyFile: string;
let big: { file: string; sha: string };

async function registerAndActivate(email: string, secupass: string): Promise<Api> {
  const mail = await smtp.waitFor(email, 'invitation');
  const token = linkIn(mail, 'http://127.0.0.1:8080/register').searchParams.get('token');
  await api.ok('POST', '/api/v1/registration', { token, password: PW }, 201);
  const user = await api.login(email, PW);
  await user.ok('POST', '/api/v1/secupass', { secupass }, 201);
  return user;
}

async function gpgDecrypt(user: Api, secupass: string, file: string): Promise<Buffer> {
  const key = await user.ok<{ key: { privateKey: string } }>('GET', '/api/v1/secupass/key');
  const gpg = await GpgKeyring.withKey(key.key.privateKey, secupass);
  try {
    return await gpg.decrypt(file);
  } finally {
    await gpg.remove();
  }
}

beforeAll(async () => {
  await requireSftpTools();
  smtp = await new SmtpCatcher().start();
  sb = sandbox({ SEALDROP_DROP_FOLDERS: '[{name: invoices, owner: boss@example.org, recipients: [partner@example.net], level: 3, subject: "Invoices {date}"}]' }, smtp.port);
  files = path.join(sb.dir, 'files');
  mkdirSync(files);
  keyFile = await makeSshKey(sb.dir);
  for (const [email, role, owner] of [
    ['alice@example.org', 'member', undefined],
    ['boss@example.org', 'member', undefined],
    ['bob@example.org', 'member', undefined],
    ['erp@example.org', 'service', 'boss@example.org'],
  ] as const) {
    const r = await runCli(sb, ['account', 'add', '--email', email, '--role', role, ...(owner ? ['--owner', owner] : []), '--password-stdin'], PW);
    expect(r.code, r.stderr).toBe(0);
  }
  const k = await runCli(sb, ['ssh-key', 'add', '--email', 'alice@example.org', '--key-file', `${keyFile}.pub`]);
  expect(k.code, k.stderr).toBe(0);
  daemon = await startDaemonProcess(sb);
  api = new Api(daemon.url);
  for (const [email, sp] of [
    ['alice@example.org', 'alice secupass long'],
    ['boss@example.org', 'boss secupass long'],
    ['bob@example.org', 'bob secupass long'],
  ]) {
    await (await api.login(email as string, PW)).ok('POST', '/api/v1/secupass', { secupass: sp }, 201);
  }
  big = { file: path.join(files, 'big.bin'), sha: '' };
  big.sha = randomFile(big.file, 200 * MiB);
});

afterAll(async () => {
  await daemon?.stop();
  await smtp?.stop();
  sb?.remove();
});

describe('SFTP', () => {
  it('prints the host key fingerprints the daemon serves', async () => {
    const r = await runCli(sb, ['host-keys']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.map((l) => l.split('\t')[0])).toEqual(['ed25519', 'rsa']);
    for (const l of lines) expect(daemon.output()).toContain(l.split('\t')[1] as string);
  });

  it('collects a batch into /outbox/<email>/: sizes, .filepart rename, .ready sends one delivery with one mail', async () => {
    const small = path.join(files, 'small.txt');
    writeFileSync(small, 'hello over sftp\n');
    const empty = path.join(files, 'empty');
    writeFileSync(empty, '');
    const r = await sftpBatch(daemon.sftpPort, { user: 'alice@example.org', password: PW }, [
      'ls /',
      'cd /outbox/x@example.org',
      `put ${big.file} big.bin`,
      `put ${small} report.pdf.filepart`,
      'rename report.pdf.filepart report.pdf',
      `put ${small} .DS_Store`,
      'ls -l',
      `put ${empty} .ready`,
      'ls -l',
      `-put ${small} /inbox/nope.txt`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\/inbox\s+\/outbox/);
    const [, beforeTrigger, afterTrigger] = r.stdout.split('sftp> ls -l');
    expect(beforeTrigger).toMatch(new RegExp(`${200 * MiB}\\s+\\w+ +\\d+ \\d+:\\d+ big\\.bin`));
    expect(beforeTrigger).toMatch(/16 \w+ +\d+ \d+:\d+ report\.pdf\n/);
    // The trigger sent the delivery in the middle of the session: the folder is empty again.
    expect(afterTrigger).not.toMatch(/big\.bin|report\.pdf/);
    expect(r.stderr).toMatch(/Permission denied|read-only/i);
    const alice = await api.login('alice@example.org', PW);
    // The .DS_Store noise was never delivered.
    const out = await alice.ok<{ deliveries: Array<{ id: string; state: string; subject: string; files: Array<{ name: string; size: number }> }> }>('GET', '/api/v1/deliveries?box=outbox');
    const d = out.deliveries.find((x) => x.files.some((f) => f.name === 'big.bin'));
    expect(d?.state).toBe('sent');
    expect(d?.files.map((f) => [f.name, f.size])).toEqual([
      ['big.bin', 200 * MiB],
      ['report.pdf', 16],
    ]);
    await smtp.waitFor('x@example.org', 'invitation');
    await new Promise((res) => setTimeout(res, 500));
    expect(smtp.to('x@example.org')).toHaveLength(1);

    // The recipient registers and activates; alice releases; the recipient pulls it with sftp get.
    const x = await registerAndActivate('x@example.org', 'x secupass long');
    await alice.ok('POST', `/api/v1/deliveries/${d?.id}/release`, { secupass: 'alice secupass long' });
    const ls = await sftpBatch(daemon.sftpPort, { user: 'x@example.org', password: PW }, ['ls -1 /inbox']);
    const dir = ls.stdout.split('\n').map((l) => l.trim()).find((l) => l.startsWith('/inbox/')) as string;
    expect(dir).toMatch(/^\/inbox\/\d{4}-\d{2}-\d{2} Files from alice@example\.org \[[0-9a-f]{8}\]$/);
    const out1 = path.join(files, 'x-big.pgp');
    const get = await sftpBatch(daemon.sftpPort, { user: 'x@example.org', password: PW }, [`get ${q(`${dir}/big.bin.pgp`)} ${out1}`, `-put ${small} ${q(`${dir}/x.txt`)}`]);
    expect(get.code, get.stderr).toBe(0);
    expect(sha(await gpgDecrypt(x, 'x secupass long', out1))).toBe(big.sha);
  });

  it('sends a key-auth session into a subject subfolder when the session ends cleanly; refuses resume', async () => {
    const f = path.join(files, 'q3.csv');
    writeFileSync(f, 'a,b\n1,2\n');
    const r = await sftpBatch(daemon.sftpPort, { user: 'alice@example.org', keyFile }, ['mkdir "/outbox/y@example.org/Q3 figures"', `put ${f} "/outbox/y@example.org/Q3 figures/q3.csv"`, `-reput ${f} "/outbox/y@example.org/Q3 figures/q3.csv"`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resum|append/i);
    const alice = await api.login('alice@example.org', PW);
    const out = await alice.ok<{ deliveries: Array<{ subject: string; state: string; files: unknown[] }> }>('GET', '/api/v1/deliveries?box=outbox');
    expect(out.deliveries.find((d) => d.subject === 'Q3 figures')).toMatchObject({ state: 'sent', files: [expect.objectContaining({ name: 'q3.csv', size: 8 })] });
    const bad = await sftpBatch(daemon.sftpPort, { user: 'alice@example.org', keyFile: `${keyFile}.wrong` }, ['ls /']);
    expect(bad.code).not.toBe(0);
    // A key registered through the API logs its owner in, and only its owner.
    const bobKey = await makeSshKey(mkdtempSync(path.join(sb.dir, 'bobkey-')));
    const bob = await api.login('bob@example.org', PW);
    const added = await bob.ok<{ key: { id: string; fingerprint: string } }>('POST', '/api/v1/ssh-keys', { publicKey: readFileSync(`${bobKey}.pub`, 'utf8') }, 201);
    expect(added.key.fingerprint).toMatch(/^SHA256:/);
    await bob.fails('POST', '/api/v1/ssh-keys', { publicKey: readFileSync(`${bobKey}.pub`, 'utf8') }, 409, 'SEALDROP_E_CONFLICT');
    await bob.fails('POST', '/api/v1/ssh-keys', { publicKey: 'ssh-dss AAAA' }, 400, 'SEALDROP_E_KEY_INVALID');
    expect((await sftpBatch(daemon.sftpPort, { user: 'bob@example.org', keyFile: bobKey }, ['ls /'])).code).toBe(0);
    expect((await sftpBatch(daemon.sftpPort, { user: 'alice@example.org', keyFile: bobKey }, ['ls /'])).code).not.toBe(0);
    await bob.ok('DELETE', `/api/v1/ssh-keys/${added.key.id}`, undefined, 204);
    expect((await sftpBatch(daemon.sftpPort, { user: 'bob@example.org', keyFile: bobKey }, ['ls /'])).code).not.toBe(0);
  });

  it('lets a service account drop into its owner folder; the owner releases; the partner gets it with sftp and rclone', async () => {
    const csv = path.join(files, 'inv.csv');
    const content = randomBytes(300_000);
    writeFileSync(csv, content);
    const r = await sftpBatch(daemon.sftpPort, { user: 'erp@example.org', password: PW }, ['ls /', `put ${csv} /invoices/inv-2026-11.csv`, `-put ${csv} /outbox/z@example.org/x.csv`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/sftp> ls \/\n\/invoices\s*\nsftp>/);
    expect(r.stderr).toMatch(/No such file|not found/i);
    const partner = await registerAndActivate('partner@example.net', 'partner secupass long');
    await smtp.waitFor('boss@example.org', 'release_needed');
    const boss = await api.login('boss@example.org', PW);
    const out = await boss.ok<{ deliveries: Array<{ id: string; sender: string; dropFolder: string }> }>('GET', '/api/v1/deliveries?box=outbox');
    const d = out.deliveries.find((x) => x.dropFolder === 'invoices');
    expect(d?.sender).toBe('erp@example.org');
    await boss.ok('POST', `/api/v1/deliveries/${d?.id}/release`, { secupass: 'boss secupass long' });
    const ls = await sftpBatch(daemon.sftpPort, { user: 'partner@example.net', password: PW }, ['ls -1 /inbox']);
    const dir = ls.stdout.split('\n').map((l) => l.trim()).find((l) => l.startsWith('/inbox/')) as string;
    const viaSftp = path.join(files, 'inv-sftp.pgp');
    expect((await sftpBatch(daemon.sftpPort, { user: 'partner@example.net', password: PW }, [`get ${q(`${dir}/inv-2026-11.csv.pgp`)} ${viaSftp}`])).code).toBe(0);
    expect((await gpgDecrypt(partner, 'partner secupass long', viaSftp)).equals(content)).toBe(true);
    const rdir = path.join(files, 'rclone-dl');
    const rc = await rclone(daemon.sftpPort, 'partner@example.net', PW, (remote) => ['copy', remote(dir), rdir]);
    expect(rc.code, rc.stderr).toBe(0);
    expect(rc.stderr).not.toMatch(/corrupted|sizes differ|ERROR/);
    expect((await gpgDecrypt(partner, 'partner secupass long', path.join(rdir, 'inv-2026-11.csv.pgp'))).equals(content)).toBe(true);
  });

  it('takes uploads from rclone with its size check passing; a recipient with an active key gets it at once', async () => {
    const src = path.join(files, 'rclone-up');
    mkdirSync(src);
    const a = randomBytes(2 * MiB + 17);
    writeFileSync(path.join(src, 'a.bin'), a);
    writeFileSync(path.join(src, 'b.txt'), 'bee');
    const up = await rclone(daemon.sftpPort, 'alice@example.org', PW, (remote) => ['copy', src, remote('/outbox/bob@example.org/')]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toMatch(/a\.bin: Copied \(new\)/);
    expect(up.stderr).not.toMatch(/corrupted|sizes differ|ERROR/);
    const bob = await api.login('bob@example.org', PW);
    // rclone's last connection ending cleanly sends the delivery; the daemon sees that end just
    // after rclone has exited.
    const state = async () => (await bob.ok<{ deliveries: Array<{ recipients: Array<{ state: string }> }> }>('GET', '/api/v1/deliveries?box=inbox')).deliveries[0]?.recipients[0]?.state;
    await until('the delivery in bob\'s inbox', async () => (await state()) !== undefined, 10_000);
    expect(await state()).toBe('available');
    const dl = path.join(files, 'bob-dl');
    const get = await rclone(daemon.sftpPort, 'bob@example.org', PW, (remote) => ['copy', remote('/inbox'), dl]);
    expect(get.code, get.stderr).toBe(0);
    const pgp = filesUnder(dl).find((f) => f.endsWith('a.bin.pgp')) as string;
    expect((await gpgDecrypt(bob, 'bob secupass long', pgp)).equals(a)).toBe(true);
  });
});

describe('SFTP crashes', () => {
  const partials = () => filesUnder(path.join(sb.dataDir, 'blobs', 'tmp'));
  const blobs = () => filesUnder(path.join(sb.dataDir, 'blobs')).filter((f) => !f.includes(`${path.sep}tmp${path.sep}`));

  async function startBigUpload(folder: string): Promise<{ kill: () => void }> {
    const child = sftpBatchDetached(daemon.sftpPort, { user: 'alice@example.org', password: PW }, [`put ${big.file} /outbox/${folder}/big.bin`]);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const grown = partials().some((f) => statSync(f).size > 20 * MiB);
      if (grown) break;
      if (Date.now() > deadline) throw new Error('upload did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      kill: () => {
        try {
          process.kill(-(child.pid as number), 'SIGKILL');
        } catch {
          // already gone (it exits by itself when the daemon dies)
        }
      },
    };
  }

  async function expectNothingOf(folder: string, blobsBefore: string[], mailsBefore: number): Promise<void> {
    const alice = await api.login('alice@example.org', PW);
    const out = await alice.ok<{ deliveries: Array<{ recipients: Array<{ email: string }> }> }>('GET', '/api/v1/deliveries?box=outbox');
    expect(out.deliveries.filter((d) => d.recipients.some((r) => r.email === folder))).toEqual([]);
    expect(partials()).toEqual([]);
    expect(blobs().sort()).toEqual(blobsBefore.sort());
    await delay(600);
    // Mails of earlier tests may still arrive; none may be about this folder.
    expect(smtp.mails.slice(mailsBefore).filter((m) => m.to.includes(folder) || m.raw.includes(folder))).toEqual([]);
  }

  it('keeps nothing of an upload whose client is killed midway', async () => {
    const before = blobs();
    const mails = smtp.mails.length;
    const up = await startBigUpload('killed-client@example.org');
    up.kill();
    await new Promise((r) => setTimeout(r, 1500));
    await expectNothingOf('killed-client@example.org', before, mails);
  });

  it('keeps nothing of an upload when the daemon is killed midway, after the next start', async () => {
    const before = blobs();
    const mails = smtp.mails.length;
    const up = await startBigUpload('killed-daemon@example.org');
    await daemon.kill();
    up.kill();
    expect(partials().length).toBeGreaterThan(0); // the crash left a partial file...
    daemon = await startDaemonProcess(sb);
    api = new Api(daemon.url);
    await expectNothingOf('killed-daemon@example.org', before, mails); // ...which the next start removed
    expect(readFileSync(sb.logFile, 'utf8')).toMatch(/removed leftovers of interrupted uploads/);
  });
});
