/**
 * Operations, outside-in on the real daemon process: graceful SIGTERM during an upload (the
 * upload completes, or leaves nothing when it outlasts the shutdown timeout), no outbox mail
 * lost across a SIGTERM, HTTPS from configured certificates, and SIGHUP reloading drop
 * folders and a renewed certificate without a restart.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { Api } from './support/api.ts';
import { filesUnder } from './support/canary.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';
import { SmtpCatcher } from './support/smtp.ts';
import { delay, until } from './support/wait.ts';

const exec = promisify(execFile);
const MiB = 1024 * 1024;

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup(extraEnv: Record<string, string> = {}): Promise<{ sb: Sandbox; smtp: SmtpCatcher; daemon: DaemonProcess; api: Api }> {
  const smtp = await new SmtpCatcher().start();
  const sb = sandbox({ SEALDROP_SFTP__ENABLED: 'false', SEALDROP_METRICS__ENABLED: 'false', ...extraEnv }, smtp.port);
  const add = await runCli(sb, ['account', 'add', '--email', 'alice@example.org', '--role', 'member', '--password-stdin'], 'alice password long enough\n');
  expect(add.code, add.stderr).toBe(0);
  const daemon = await startDaemonProcess(sb);
  const state = { sb, smtp, daemon, api: await new Api(daemon.url).login('alice@example.org', 'alice password long enough') };
  cleanup.push(async () => {
    await state.daemon.kill();
    await smtp.stop();
    sb.remove();
  });
  return state;
}

/** curl PUT of a `size`-byte file at `rate` bytes/s; resolves to the HTTP status (0: no reply). */
function slowUpload(dir: string, url: string, token: string, size: number, rate: string): Promise<number> {
  const file = path.join(dir, `upload-${size}.bin`);
  writeFileSync(file, randomBytes(size));
  return new Promise((resolve) => {
    const child = spawn('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-T', file, '--limit-rate', rate, '-H', `authorization: Bearer ${token}`, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', () => resolve(Number(out.trim()) || 0));
  });
}

const uploading = (s: { sb: Sandbox }) => until('the upload to reach the daemon', () => filesUnder(path.join(s.sb.dataDir, 'blobs', 'tmp')).length > 0, 20_000);

describe('graceful shutdown', () => {
  it('lets a running upload finish on SIGTERM, and the queued mail is sent', async () => {
    const s = await setup({ SEALDROP_SERVER__SHUTDOWN_TIMEOUT_SECONDS: '20' });
    const { delivery } = await s.api.ok<{ delivery: { id: string } }>('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: 'shutdown', level: 2 }, 201);
    const upload = slowUpload(s.sb.tmpDir, `${s.daemon.url}/api/v1/deliveries/${delivery.id}/files/big.bin`, s.api.token as string, 6 * MiB, '3M');
    await uploading(s);
    // A delivery sent right before the signal: its invitation mail must not be lost.
    const { delivery: other } = await s.api.ok<{ delivery: { id: string } }>('POST', '/api/v1/deliveries', { to: ['carol@example.org'], subject: 'mail', level: 2, message: 'hello' }, 201);
    await s.api.ok('POST', `/api/v1/deliveries/${other.id}/send`);
    const code = s.daemon.stop();
    expect(await upload).toBe(201);
    expect(await code).toBe(0);
    expect(s.daemon.output()).toMatch(/"msg":"stopped"/);

    s.daemon = await startDaemonProcess(s.sb);
    const api = await new Api(s.daemon.url).login('alice@example.org', 'alice password long enough');
    const got = await api.ok<{ delivery: { files: Array<{ name: string; size: number }> } }>('GET', `/api/v1/deliveries/${delivery.id}`);
    expect(got.delivery.files).toEqual([expect.objectContaining({ name: 'big.bin', size: 6 * MiB })]);
    await s.smtp.waitFor('carol@example.org', 'invitation');
    await delay(1500);
    expect(s.smtp.to('carol@example.org', 'invitation')).toHaveLength(1);
  }, 90_000);

  it('cuts an upload that outlasts the shutdown timeout and leaves nothing of it', async () => {
    const s = await setup({ SEALDROP_SERVER__SHUTDOWN_TIMEOUT_SECONDS: '1' });
    const { delivery } = await s.api.ok<{ delivery: { id: string } }>('POST', '/api/v1/deliveries', { to: ['bob@example.org'], subject: 'cut', level: 2 }, 201);
    const upload = slowUpload(s.sb.tmpDir, `${s.daemon.url}/api/v1/deliveries/${delivery.id}/files/big.bin`, s.api.token as string, 40 * MiB, '2M');
    await uploading(s);
    const started = Date.now();
    expect(await s.daemon.stop()).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    // The connection was cut: no final reply (curl shows 0, or 100 from its Expect: 100-continue).
    expect([0, 100]).toContain(await upload);

    s.daemon = await startDaemonProcess(s.sb);
    const api = await new Api(s.daemon.url).login('alice@example.org', 'alice password long enough');
    const got = await api.ok<{ delivery: { files: unknown[] } }>('GET', `/api/v1/deliveries/${delivery.id}`);
    expect(got.delivery.files).toEqual([]);
    const blobs = filesUnder(path.join(s.sb.dataDir, 'blobs'));
    expect(blobs).toEqual([]);
  }, 90_000);
});

describe('TLS and SIGHUP', () => {
  async function makeCert(dir: string, cn: string): Promise<{ cert: string; key: string }> {
    const cert = path.join(dir, `${cn}.crt`);
    const key = path.join(dir, `${cn}.key`);
    try {
      await exec('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
    } catch (err) {
      throw new Error(`openssl failed (install the Debian package openssl): ${(err as Error).message}`);
    }
    return { cert, key };
  }

  function peerCn(port: number, ca: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port, ca: [ca], servername: undefined }, () => {
        const cn = sock.getPeerCertificate().subject.CN;
        sock.end();
        resolve(String(Array.isArray(cn) ? cn.join(',') : cn));
      });
      sock.on('error', reject);
    });
  }

  it('serves HTTPS from the configured files and reloads certificate and drop folders on SIGHUP', async () => {
    const smtp = await new SmtpCatcher().start();
    const sb = sandbox({ SEALDROP_SFTP__ENABLED: 'false', SEALDROP_METRICS__ENABLED: 'false' }, smtp.port);
    cleanup.push(async () => {
      await smtp.stop();
      sb.remove();
    });
    const first = await makeCert(sb.dir, 'first');
    const second = await makeCert(sb.dir, 'second');
    const live = { cert: path.join(sb.dir, 'live.crt'), key: path.join(sb.dir, 'live.key') };
    const { readFileSync } = await import('node:fs');
    writeFileSync(live.cert, readFileSync(first.cert));
    writeFileSync(live.key, readFileSync(first.key));
    const configFile = path.join(sb.dir, 'sealdrop.yaml');
    const writeConfig = (folders: string[]) =>
      writeFileSync(configFile, `http:\n  tls:\n    certFile: ${live.cert}\n    keyFile: ${live.key}\ndropFolders:\n${folders.map((n) => `  - name: ${n}\n    owner: alice@example.org\n    recipients: [bob@example.org]\n    level: 2\n`).join('')}`);
    writeConfig(['invoices']);
    expect((await runCli(sb, ['account', 'add', '--email', 'alice@example.org', '--role', 'member', '--password-stdin', '--config', configFile], 'alice password long enough\n')).code).toBe(0);
    const daemon = await startDaemonProcess(sb, { SEALDROP_CONFIG: configFile });
    cleanup.unshift(() => daemon.kill());
    const url = `https://127.0.0.1:${daemon.port}`;
    expect(daemon.output()).toContain(`"url":"https://127.0.0.1:${daemon.port}"`);

    const health = await exec('curl', ['-sS', '--cacert', first.cert, `${url}/healthz`]);
    expect(JSON.parse(health.stdout)).toEqual({ status: 'ok' });
    // Plain HTTP on the TLS port gets nowhere.
    await expect(exec('curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${daemon.port}/healthz`])).rejects.toThrow();
    expect(await peerCn(daemon.port, readFileSync(first.cert, 'utf8'))).toBe('first');

    const login = await exec('curl', ['-sS', '--cacert', first.cert, '-H', 'content-type: application/json', '-d', JSON.stringify({ email: 'alice@example.org', password: 'alice password long enough' }), `${url}/api/v1/session`]);
    const token = JSON.parse(login.stdout).token as string;
    const createIn = async (folder: string, ca: string) =>
      JSON.parse((await exec('curl', ['-sS', '--cacert', ca, '-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json', '-d', JSON.stringify({ dropFolder: folder, subject: 'x' }), `${url}/api/v1/deliveries`])).stdout) as { error?: { code: string }; delivery?: { id: string } };
    expect((await createIn('contracts', first.cert)).error?.code).toBeTruthy();

    // Renew the certificate in place and add a drop folder; SIGHUP applies both.
    writeFileSync(live.cert, readFileSync(second.cert));
    writeFileSync(live.key, readFileSync(second.key));
    writeConfig(['invoices', 'contracts']);
    daemon.child.kill('SIGHUP');
    await until('the reload', () => daemon.output().includes('configuration reloaded'), 10_000);
    expect(await peerCn(daemon.port, readFileSync(second.cert, 'utf8'))).toBe('second');
    expect((await createIn('contracts', second.cert)).delivery?.id).toBeTruthy();

    // A broken reload keeps the running state.
    writeFileSync(configFile, 'http:\n  tls:\n    certFile: /nonexistent.crt\n    keyFile: /nonexistent.key\n');
    daemon.child.kill('SIGHUP');
    await until('the failed reload', () => daemon.output().includes('reload failed'), 10_000);
    expect(daemon.output()).toMatch(/cannot read \/nonexistent\.crt/);
    expect(await peerCn(daemon.port, readFileSync(second.cert, 'utf8'))).toBe('second');
    expect(await daemon.stop()).toBe(0);
    // No temporary files are left in the data folder.
    expect(readdirSync(sb.dataDir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  }, 90_000);
});
