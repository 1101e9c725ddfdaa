/**
 * Hostile SFTP requests against the real daemon, sent with ssh2's client (which, unlike
 * OpenSSH's, sends whatever handle, offset, flags and name it is given): every one gets an SFTP
 * status with the core's error code in its message, the daemon logs no internal error, stays
 * up, and keeps no blob, temp file or delivery of anything it refused.
 */
import { readdirSync, readFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { SFTPWrapper } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatePair } from '../src/protocols/sftp/host-keys.ts';
import { Api } from './support/api.ts';
import { filesUnder } from './support/canary.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';
import { delay, until } from './support/wait.ts';

const { STATUS_CODE, OPEN_MODE } = ssh2.utils.sftp;
const PW = 'hostile sftp password 1';
const USER = 'mallory@example.org';
const SECUPASS = 'hostile sftp secupass';

let sb: Sandbox;
let daemon: DaemonProcess;
let conn: ssh2.Client;
let sftp: SFTPWrapper;

/** What a request answered: a value, or the status code and message of its error. */
type Outcome<T> = { ok: true; value: T } | { ok: false; code: number; message: string };

function call<T>(fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    fn((err, value) => {
      if (err) resolve({ ok: false, code: (err as Error & { code?: number }).code ?? -1, message: err.message });
      else resolve({ ok: true, value: value as T });
    });
  });
}

/** Expects a refusal with `code` whose message names one of the core's error codes. */
function refused(o: Outcome<unknown>, code: number, sealdropCode?: RegExp): void {
  expect(o.ok, JSON.stringify(o)).toBe(false);
  if (o.ok) return;
  expect(o.code, o.message).toBe(code);
  if (sealdropCode) expect(o.message).toMatch(sealdropCode);
}

const open = (p: string, flags: number) => call<Buffer>((cb) => sftp.open(p, flags, {}, cb));
const WRITE_NEW = OPEN_MODE.WRITE | OPEN_MODE.CREAT | OPEN_MODE.TRUNC;

function connect(username = USER, password = PW): Promise<ssh2.Client> {
  const c = new ssh2.Client();
  return new Promise((resolve, reject) => {
    c.on('ready', () => resolve(c)).on('error', reject);
    c.connect({ host: '127.0.0.1', port: daemon.sftpPort, username, password, hostVerifier: () => true });
  });
}

/** Ends a connection and waits until it is closed. */
async function hangUp(c: ssh2.Client): Promise<void> {
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
  c.end();
  await closed;
}

/** Opens `n` new files for writing, one byte written to each; returns their handles. */
async function openUploads(s: SFTPWrapper, folder: string, n: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const o = await call<Buffer>((cb) => s.open(`${folder}/u${out.length}-${i}.bin`, WRITE_NEW, {}, cb));
    expect(o.ok, JSON.stringify(o)).toBe(true);
    if (!o.ok) break;
    expect((await call((cb) => s.write(o.value, Buffer.from('x'), 0, 1, 0, cb))).ok).toBe(true);
    out.push(o.value);
  }
  return out;
}

/** Open files of the daemon process (its file descriptors). */
function openFds(): number {
  return readdirSync(`/proc/${daemon.child.pid}/fd`).length;
}

function sftpOf(c: ssh2.Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
}

beforeAll(async () => {
  sb = sandbox({ SEALDROP_SFTP__MAX_UNAUTHENTICATED: '4', SEALDROP_SFTP__AUTH_TIMEOUT_SECONDS: '3', SEALDROP_SFTP__MAX_OPEN_FILES_PER_ACCOUNT: '20' });
  const r = await runCli(sb, ['account', 'add', '--email', USER, '--role', 'member', '--password-stdin'], PW);
  expect(r.code, r.stderr).toBe(0);
  daemon = await startDaemonProcess(sb);
  // Level 3 uploads need the sender's key.
  await (await new Api(daemon.url).login(USER, PW)).ok('POST', '/api/v1/secupass', { secupass: SECUPASS }, 201);
  conn = await connect();
  sftp = await sftpOf(conn);
});

afterAll(async () => {
  conn?.end();
  await daemon?.stop();
  sb?.remove();
});

describe('hostile SFTP requests', () => {
  it('refuses names outside the tree, odd names and writes where the caller may not write', async () => {
    for (const p of [
      '/outbox/../etc/passwd',
      '/outbox/x@example.org/../../y.bin',
      '/../../../../tmp/z.bin',
      '/outbox/not-an-address/f.bin',
      '/outbox/x@example.org/a\u0000b.bin',
      '/outbox/x@example.org/a\nb.bin',
      `/outbox/x@example.org/${'n'.repeat(5000)}.bin`,
      '/outbox/x@example.org/',
      '/f.bin',
    ]) {
      const o = await open(p, WRITE_NEW);
      expect(o.ok, `${JSON.stringify(p.slice(0, 60))}: ${JSON.stringify(o)}`).toBe(false);
      if (!o.ok) expect(o.message, p.slice(0, 60)).toMatch(/SEALDROP_E_[A-Z_]+/);
    }
    refused(await open('/inbox/anything/f.bin', WRITE_NEW), STATUS_CODE.PERMISSION_DENIED, /SEALDROP_E_FORBIDDEN/);
    refused(await call((cb) => sftp.mkdir('/inbox/new', cb)), STATUS_CODE.PERMISSION_DENIED, /SEALDROP_E_FORBIDDEN/);
    refused(await call((cb) => sftp.unlink('/inbox/anything/f.bin.pgp', cb)), STATUS_CODE.PERMISSION_DENIED, /SEALDROP_E_FORBIDDEN/);
    refused(await call((cb) => sftp.rmdir('/inbox', cb)), STATUS_CODE.PERMISSION_DENIED);
    refused(await call((cb) => sftp.rmdir('/', cb)), STATUS_CODE.PERMISSION_DENIED);
    refused(await open('/inbox/nothing-here/f.bin.pgp', OPEN_MODE.READ), STATUS_CODE.NO_SUCH_FILE, /SEALDROP_E_NOT_FOUND/);
    refused(await call((cb) => sftp.stat('/nowhere/at/all', cb)), STATUS_CODE.NO_SUCH_FILE);
  });

  it('answers bogus handles, wrong-way handles and unsupported requests with a status', async () => {
    for (const h of [Buffer.alloc(0), Buffer.from('abc'), Buffer.from([0, 0, 0, 99]), Buffer.alloc(256, 0xff)]) {
      refused(await call((cb) => sftp.close(h, cb)), STATUS_CODE.FAILURE, /SEALDROP_E_VALIDATION: invalid handle/);
      refused(await call((cb) => sftp.write(h, Buffer.from('x'), 0, 1, 0, cb)), STATUS_CODE.FAILURE, /invalid handle/);
      refused(await call((cb) => sftp.read(h, Buffer.alloc(16), 0, 16, 0, cb)), STATUS_CODE.FAILURE, /invalid handle/);
      refused(await call((cb) => sftp.fstat(h, cb)), STATUS_CODE.FAILURE, /invalid handle/);
      refused(await call((cb) => sftp.readdir(h, cb)), STATUS_CODE.FAILURE, /invalid handle/);
    }
    // Read and write at once is refused; a directory handle is not a file.
    refused(await open('/outbox/rw@example.org/f.bin', OPEN_MODE.READ | OPEN_MODE.WRITE | OPEN_MODE.CREAT), STATUS_CODE.FAILURE, /SEALDROP_E_VALIDATION/);
    const dir = await call<Buffer>((cb) => sftp.opendir('/', cb));
    expect(dir.ok).toBe(true);
    if (dir.ok) {
      refused(await call((cb) => sftp.write(dir.value, Buffer.from('x'), 0, 1, 0, cb)), STATUS_CODE.FAILURE, /SEALDROP_E_VALIDATION/);
      refused(await call((cb) => sftp.read(dir.value, Buffer.alloc(16), 0, 16, 0, cb)), STATUS_CODE.FAILURE, /SEALDROP_E_VALIDATION/);
      expect((await call((cb) => sftp.close(dir.value, cb))).ok).toBe(true);
      refused(await call((cb) => sftp.close(dir.value, cb)), STATUS_CODE.FAILURE, /invalid handle/);
    }
    refused(await call((cb) => sftp.symlink('/outbox/a', '/outbox/b', cb)), STATUS_CODE.OP_UNSUPPORTED);
    refused(await call((cb) => sftp.readlink('/outbox', cb)), STATUS_CODE.OP_UNSUPPORTED);
  });

  it('refuses writes out of order and keeps nothing of that file', async () => {
    const folder = '/outbox/gap@example.org';
    const h = await open(`${folder}/gap.bin`, WRITE_NEW);
    expect(h.ok, JSON.stringify(h)).toBe(true);
    if (!h.ok) return;
    expect((await call((cb) => sftp.write(h.value, Buffer.alloc(1000, 1), 0, 1000, 0, cb))).ok).toBe(true);
    // A gap, a rewrite of the start, and a write far beyond the end: each one refused.
    refused(await call((cb) => sftp.write(h.value, Buffer.alloc(10, 2), 0, 10, 5000, cb)), STATUS_CODE.FAILURE, /SEALDROP_E_WRONG_STATE/);
    refused(await call((cb) => sftp.write(h.value, Buffer.alloc(10, 2), 0, 10, 1000, cb)), STATUS_CODE.FAILURE, /SEALDROP_E_WRONG_STATE/);
    refused(await call((cb) => sftp.write(h.value, Buffer.alloc(10, 2), 0, 10, 2 ** 52, cb)), STATUS_CODE.FAILURE, /SEALDROP_E_WRONG_STATE/);
    const closed = await call((cb) => sftp.close(h.value, cb));
    expect(closed.ok, 'a failed upload does not close as stored').toBe(false);
    refused(await call((cb) => sftp.stat(`${folder}/gap.bin`, cb)), STATUS_CODE.NO_SUCH_FILE);
  });

  it('opens no more than the handle limit, and closing frees handles again', async () => {
    const h = await open('/outbox/cap@example.org/small.bin', WRITE_NEW);
    expect(h.ok).toBe(true);
    if (!h.ok) return;
    expect((await call((cb) => sftp.write(h.value, Buffer.from('hello'), 0, 5, 0, cb))).ok).toBe(true);
    expect((await call((cb) => sftp.close(h.value, cb))).ok).toBe(true);
    const handles: Buffer[] = [];
    let limited: Outcome<Buffer> | undefined;
    for (let i = 0; i < 70 && !limited; i++) {
      const o = await call<Buffer>((cb) => sftp.opendir('/', cb));
      if (o.ok) handles.push(o.value);
      else limited = o;
    }
    expect(handles).toHaveLength(64);
    refused(limited as Outcome<Buffer>, STATUS_CODE.FAILURE, /SEALDROP_E_LIMIT/);
    for (const d of handles) expect((await call((cb) => sftp.close(d, cb))).ok).toBe(true);
    expect((await call((cb) => sftp.opendir('/', cb))).ok, 'handles free again after closing').toBe(true);
  });

  it('ends only the SFTP channel on a protocol violation (a handle over 256 bytes); that session never ends cleanly', async () => {
    // A connection of its own, with a finished upload waiting in its folder: a clean end of
    // the session would send it (tree.sendOnSessionEnd).
    const c2 = await connect();
    let s2 = await sftpOf(c2);
    const h = await call<Buffer>((cb) => s2.open('/outbox/viol@example.org/v.bin', WRITE_NEW, {}, cb));
    expect(h.ok).toBe(true);
    if (!h.ok) return;
    expect((await call((cb) => s2.write(h.value, Buffer.from('data'), 0, 4, 0, cb))).ok).toBe(true);
    expect((await call((cb) => s2.close(h.value, cb))).ok).toBe(true);
    const gone = await call((cb) => s2.close(Buffer.alloc(257, 1), cb));
    expect(gone.ok).toBe(false);
    s2 = await sftpOf(c2);
    expect((await call((cb) => s2.stat('/outbox', cb))).ok, 'a new SFTP channel on the same connection works').toBe(true);
    s2.end();
    const closed = new Promise<void>((resolve) => c2.once('close', () => resolve()));
    c2.end();
    await closed;
    const user = await new Api(daemon.url).login(USER, PW);
    const stateOfV = async () => {
      const out = await user.ok<{ deliveries: Array<{ state: string; files: Array<{ name: string }> }> }>('GET', '/api/v1/deliveries?box=outbox');
      return out.deliveries.find((d) => d.files.some((f) => f.name === 'v.bin'))?.state;
    };
    const ended = () => daemon.output().split('\n').find((l) => l.includes('sftp session ended'));
    await until('the session end to be recorded', () => ended() !== undefined);
    expect(ended()).toContain('"clean":false');
    await delay(300);
    expect(await stateOfV(), 'not sent: the session broke the protocol').toBe('open');
  });

  it('closes the channel of a client that sends requests but never takes the replies', async () => {
    const c3 = await connect();
    const s3 = await sftpOf(c3);
    // The client never re-opens its channel window: every reply the daemon sends beyond the
    // first window waits in the daemon, unless it stops taking requests.
    (c3 as unknown as { _protocol: { channelWindowAdjust: () => void } })._protocol.channelWindowAdjust = () => undefined;
    let answered = 0;
    let failed = 0;
    const sent = 150_000;
    for (let i = 0; i < sent; i++) {
      s3.stat('/outbox', (err) => (err ? failed++ : answered++));
      if (i % 10_000 === 9_999) await delay(10);
    }
    await until('the daemon to close that channel', () => daemon.output().includes('the client does not take its replies'));
    await until('every request to be settled', () => answered + failed === sent);
    // What fitted into the window was answered; the rest failed when the channel closed.
    expect(answered).toBeGreaterThan(0);
    expect(failed).toBeGreaterThan(10_000);
    const closed = new Promise<void>((resolve) => c3.once('close', () => resolve()));
    c3.end();
    await closed;
  });

  it('opens at most 10 session channels on one connection', async () => {
    const c4 = await connect();
    try {
      const open: SFTPWrapper[] = [];
      for (let i = 0; i < 10; i++) open.push(await sftpOf(c4));
      await expect(sftpOf(c4)).rejects.toThrow();
      const first = open[0] as SFTPWrapper;
      const gone = new Promise<void>((resolve) => first.once('close', () => resolve()));
      first.end();
      await gone;
      const again = await sftpOf(c4);
      expect((await call((cb) => again.stat('/outbox', cb))).ok, 'a closed channel makes room for a new one').toBe(true);
    } finally {
      const closed = new Promise<void>((resolve) => c4.once('close', () => resolve()));
      c4.end();
      await closed;
    }
  });

  it('closes connections beyond sftp.maxUnauthenticated, and a silent one after sftp.authTimeoutSeconds', async () => {
    // Raw TCP connections that never even send an SSH version line.
    const silent = async (): Promise<{ socket: Socket; closed: Promise<number> }> => {
      const socket = net.connect(daemon.sftpPort, '127.0.0.1');
      const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
      socket.on('error', () => undefined);
      socket.resume(); // reads (and drops) the server's greeting, so its end is seen
      await new Promise((resolve) => socket.once('connect', resolve));
      return { socket, closed };
    };
    const t0 = Date.now();
    const starts = [];
    for (let i = 0; i < 4; i++) starts.push(await silent());
    const fifth = await silent();
    expect((await fifth.closed) - t0, 'the fifth is closed at once').toBeLessThan(2000);
    await until('the refusal in the log', () => daemon.output().includes('too many connections not logged in yet'), 5000);
    // The four others are closed by the log-in timeout (3 s here), not before.
    const closedAt = await Promise.all(starts.map((s) => s.closed));
    for (const t of closedAt) expect(t - t0).toBeGreaterThanOrEqual(2500);
    // Their places are free again.
    (await connect()).end();
  });

  it('closes a connection after 6 failed log-in attempts', async () => {
    const c = new ssh2.Client();
    let tries = 0;
    const ended = new Promise<string>((resolve) => {
      c.on('ready', () => resolve('logged in'));
      c.on('error', (err) => resolve(err.message));
      c.on('close', () => resolve('closed'));
    });
    c.connect({
      host: '127.0.0.1',
      port: daemon.sftpPort,
      username: USER,
      hostVerifier: () => true,
      authHandler: (_methods: unknown, _partial: unknown, next: (m: unknown) => void) => {
        tries++;
        next(tries > 20 ? false : { type: 'password', username: USER, password: `wrong ${tries}` });
      },
    } as ssh2.ConnectConfig);
    expect(await ended).not.toBe('logged in');
    expect(tries, 'the daemon ended the connection after the sixth wrong password').toBeLessThanOrEqual(7);
    c.end();
  });

  it('releases the files of a closed channel at once, and caps the files an account has open (sftp.maxOpenFilesPerAccount)', async () => {
    const c = await connect();
    try {
      const fds = openFds();
      // Two channels share the account's 20 open files.
      const a = await sftpOf(c);
      const b = await sftpOf(c);
      await openUploads(a, '/outbox/fd-a@example.org', 15);
      await openUploads(b, '/outbox/fd-b@example.org', 5);
      expect(openFds() - fds, 'each open upload holds a file').toBeGreaterThanOrEqual(15);
      refused(await call((cb) => b.open('/outbox/fd-b@example.org/one-more.bin', WRITE_NEW, {}, cb)), STATUS_CODE.FAILURE, /SEALDROP_E_LIMIT: at most 20 files open at once per account/);
      // Closing channel a (its uploads unfinished) gives back its 15 files and removes their data.
      const gone = new Promise<void>((resolve) => a.once('close', () => resolve()));
      a.end();
      await gone;
      await until('the closed channel to release its files', () => openFds() - fds < 10);
      const more = await openUploads(b, '/outbox/fd-b@example.org', 15);
      expect(more).toHaveLength(15);
      refused(await call((cb) => b.open('/outbox/fd-b@example.org/over.bin', WRITE_NEW, {}, cb)), STATUS_CODE.FAILURE, /SEALDROP_E_LIMIT/);
    } finally {
      await hangUp(c);
    }
    await until('the connection to release every file', () => readdirSync(path.join(sb.dataDir, 'blobs', 'tmp')).length === 0);
  });

  it('answers a READ past the end with EOF at once, skips forward to the bytes asked for, and closes a channel that piles up READs', async () => {
    // A delivery to a second account, which reads it from /inbox.
    const reader = 'reader@example.org';
    const r = await runCli(sb, ['account', 'add', '--email', reader, '--role', 'member', '--password-stdin'], PW);
    expect(r.code, r.stderr).toBe(0);
    await (await new Api(daemon.url).login(reader, PW)).ok('POST', '/api/v1/secupass', { secupass: `${SECUPASS} reader` }, 201);
    const content = Buffer.alloc(3 * 1024 * 1024 + 123);
    for (let i = 0; i + 4 <= content.length; i += 4) content.writeUInt32BE(i, i);
    const up = await open(`/outbox/${reader}/big.bin`, WRITE_NEW);
    expect(up.ok).toBe(true);
    if (!up.ok) return;
    for (let off = 0; off < content.length; off += 65536) {
      const n = Math.min(65536, content.length - off);
      expect((await call((cb) => sftp.write(up.value, content, off, n, off, cb))).ok).toBe(true);
    }
    expect((await call((cb) => sftp.close(up.value, cb))).ok).toBe(true);
    const ready = await open(`/outbox/${reader}/.ready`, WRITE_NEW);
    expect(ready.ok).toBe(true);
    if (ready.ok) expect((await call((cb) => sftp.close(ready.value, cb))).ok).toBe(true);

    const c = await connect(reader, PW);
    const s = await sftpOf(c);
    const deliveries = await call<Array<{ filename: string }>>((cb) => s.readdir('/inbox', cb));
    expect(deliveries.ok).toBe(true);
    if (!deliveries.ok) return;
    const file = `/inbox/${(deliveries.value[0] as { filename: string }).filename}/big.bin.pgp`;
    const size = (await call<{ size: number }>((cb) => s.stat(file, cb))) as { ok: true; value: { size: number } };
    expect(size.ok).toBe(true);
    const whole = await call<Buffer>((cb) => s.readFile(file, cb));
    expect(whole.ok).toBe(true);
    if (!whole.ok) return;
    expect(whole.value.length).toBe(size.value.size);

    const h = await call<Buffer>((cb) => s.open(file, OPEN_MODE.READ, {}, cb));
    expect(h.ok).toBe(true);
    if (!h.ok) return;
    const readAt = (offset: number, n: number) =>
      new Promise<{ eof: boolean; data: Buffer }>((resolve, reject) => {
        const buf = Buffer.alloc(n);
        s.read(h.value, buf, 0, n, offset, (err, got) => {
          // ssh2 reports the EOF status as a read of 0 bytes.
          if (!err) resolve({ eof: got === 0, data: buf.subarray(0, got) });
          else if ((err as Error & { code?: number }).code === STATUS_CODE.EOF) resolve({ eof: true, data: Buffer.alloc(0) });
          else reject(err);
        });
      });
    const rss0 = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.child.pid}/status`, 'utf8'))?.[1]) * 1024;
    expect((await readAt(2 ** 40, 16)).eof, 'far past the end: EOF').toBe(true);
    expect((await readAt(size.value.size, 16)).eof, 'at the end: EOF').toBe(true);
    // Forward jumps: the bytes there, as a whole read gave them.
    expect((await readAt(10, 100)).data).toEqual(whole.value.subarray(10, 110));
    expect((await readAt(2 * 1024 * 1024 + 5, 1000)).data).toEqual(whole.value.subarray(2 * 1024 * 1024 + 5, 2 * 1024 * 1024 + 1005));
    expect((await readAt(size.value.size - 7, 100)).data).toEqual(whole.value.subarray(size.value.size - 7));
    const rss1 = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.child.pid}/status`, 'utf8'))?.[1]) * 1024;
    expect(rss1 - rss0, 'the jumps did not collect the file in memory').toBeLessThan(64 * 1024 * 1024);
    expect((await call((cb) => s.close(h.value, cb))).ok).toBe(true);
    await hangUp(c);

    // READs sent without end while the client never re-opens its window: each waits for its
    // answer in the daemon, so the channel is closed once too many wait.
    const c2 = await connect(reader, PW);
    const s2 = await sftpOf(c2);
    const h2 = await call<Buffer>((cb) => s2.open(file, OPEN_MODE.READ, {}, cb));
    expect(h2.ok).toBe(true);
    if (!h2.ok) return;
    (c2 as unknown as { _protocol: { channelWindowAdjust: () => void } })._protocol.channelWindowAdjust = () => undefined;
    let answered = 0;
    const sent = 20_000;
    const buf = Buffer.alloc(32 * 1024);
    for (let i = 0; i < sent; i++) {
      // A READ without an error got its data; the rest fail when the channel or connection closes.
      s2.read(h2.value, buf, 0, buf.length, i * buf.length, (err) => (err ? undefined : answered++));
      if (i % 2000 === 1999) await delay(10);
    }
    await until('the daemon to close that channel', () => daemon.output().includes('requests waiting for an answer'));
    await hangUp(c2);
    expect(answered, 'most READs were never answered').toBeLessThan(sent / 2);

    // A client that goes away with READs queued: the daemon just drops them.
    const c3 = await connect(reader, PW);
    const s3 = await sftpOf(c3);
    const h3 = await call<Buffer>((cb) => s3.open(file, OPEN_MODE.READ, {}, cb));
    expect(h3.ok).toBe(true);
    if (!h3.ok) return;
    for (let i = 0; i < 64; i++) s3.read(h3.value, Buffer.alloc(65536), 0, 65536, i * 65536, () => undefined);
    (c3 as unknown as { _sock: Socket })._sock.destroy();
    await delay(500);
  });

  it('closes the SFTP sessions of an account disabled while logged in, and never counts that end as clean', async () => {
    const victim = 'disabled-later@example.org';
    const r = await runCli(sb, ['account', 'add', '--email', victim, '--role', 'member', '--password-stdin'], PW);
    expect(r.code, r.stderr).toBe(0);
    const c = await connect(victim, PW);
    const s = await sftpOf(c);
    expect((await call((cb) => s.stat('/outbox', cb))).ok).toBe(true);
    const closed = new Promise<number>((resolve) => c.once('close', () => resolve(Date.now())));
    const d = await runCli(sb, ['account', 'disable', victim]);
    expect(d.code, d.stderr).toBe(0);
    const t0 = Date.now();
    expect((await closed) - t0, 'closed within the check interval (5 s)').toBeLessThan(8000);
    await until('the log line', () => daemon.output().includes('the login no longer holds: session closed'));
    const ended = () =>
      daemon
        .output()
        .split('\n')
        .find((l) => l.includes('sftp session ended') && l.includes(victim));
    await until('the session end to be recorded', () => ended() !== undefined);
    expect(ended()).toContain('"clean":false');
  });

  it('closes an SFTP login whose SSH key is removed, and a password login once the password changed', async () => {
    const email = 'rotating@example.org';
    const r = await runCli(sb, ['account', 'add', '--email', email, '--role', 'member', '--password-stdin'], PW);
    expect(r.code, r.stderr).toBe(0);
    const pair = generatePair('ed25519', {});
    const added = await runCli(sb, ['ssh-key', 'add', '--email', email, '--key-stdin'], pair.public);
    expect(added.code, added.stderr).toBe(0);
    const byKey = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      byKey.on('ready', () => resolve()).on('error', reject);
      byKey.connect({ host: '127.0.0.1', port: daemon.sftpPort, username: email, privateKey: pair.private, hostVerifier: () => true });
    });
    const byPassword = await connect(email, PW);
    const keyClosed = new Promise<void>((resolve) => byKey.once('close', () => resolve()));
    const pwClosed = new Promise<void>((resolve) => byPassword.once('close', () => resolve()));
    const fingerprint = /SHA256:[A-Za-z0-9+/]{43}/.exec(added.stdout)?.[0] as string;
    expect(fingerprint, added.stdout).toBeDefined();
    expect((await runCli(sb, ['ssh-key', 'remove', fingerprint])).code).toBe(0);
    await keyClosed;
    const api = await new Api(daemon.url).login(email, PW);
    await api.ok('POST', '/api/v1/password', { currentPassword: PW, newPassword: 'a new long password 7' }, 204);
    await pwClosed;
  });

  it('stays healthy, logged no internal error, and kept no blob or temp file of what it refused', async () => {
    const health = await new Api(daemon.url).call('GET', '/healthz');
    expect(health.status).toBe(200);
    const internal = daemon
      .output()
      .split('\n')
      .filter((l) => l.includes('SEALDROP_E_INTERNAL') || /"level":"(error|fatal)"/.test(l));
    expect(internal, internal.join('\n')).toEqual([]);
    // Only the three files written whole above are stored; the refused and failed ones left nothing.
    const blobDir = path.join(sb.dataDir, 'blobs');
    const blobs = filesUnder(blobDir).map((f) => path.relative(blobDir, f));
    expect(blobs.filter((f) => !f.startsWith(`tmp${path.sep}`))).toHaveLength(3);
    expect(readdirSync(path.join(blobDir, 'tmp')), 'no temporary file left').toEqual([]);
  });
});
