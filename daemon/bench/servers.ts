/**
 * The two servers under test, started as child processes on free ports inside the work folder:
 * a private OpenSSH sshd with its sftp-server (plaintext to disk), and the real sealdrop daemon
 * (`sealdrop serve`) with two member accounts whose SecuPass is active.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, portOpen, progress, runCommand, spawnServer, stopChild, waitUntil } from './proc.ts';

/** The repository root (daemon/bench/ is two levels below). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SEALDROP_BIN = path.join(ROOT, 'daemon/bin/sealdrop.js');

/** Creates an ed25519 key pair without a passphrase; returns the private key path. */
export async function makeKey(file: string, comment: string): Promise<string> {
  await runCommand('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  return file;
}

/** A running server. */
export interface RunningServer {
  port: number;
  child: ChildProcess;
  stdoutFile: string;
  stderrFile: string;
  stop(): Promise<void>;
}

/** Last `lines` lines of a log file (empty if unreadable). */
export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Starts `sshd -D -e` with a private config; `clientPub` is authorized for the current user. */
export async function startOpenSsh(dir: string, clientPub: string): Promise<RunningServer> {
  mkdirSync(dir, { recursive: true });
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation directory
  const hostKey = await makeKey(path.join(dir, 'ssh_host_ed25519_key'), 'bench host key');
  const authorized = path.join(dir, 'authorized_keys');
  await writeFile(authorized, readFileSync(clientPub, 'utf8'), { mode: 0o600 });
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorized}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin yes',
      'Subsystem sftp /usr/lib/openssh/sftp-server',
      '',
    ].join('\n'),
  );
  const stdoutFile = path.join(dir, 'sshd.stdout.log');
  const stderrFile = path.join(dir, 'sshd.stderr.log');
  const child = spawnServer('/usr/sbin/sshd', ['-D', '-e', '-f', config], { cwd: dir, stdoutFile, stderrFile });
  await waitUntil('sshd', () => portOpen(port), child, 20_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${tail(stderrFile)}`);
  });
  return { port, child, stdoutFile, stderrFile, stop: () => stopChild(child) };
}

/** The sealdrop test accounts. */
export const SENDER = 'sender@example.org';
export const RECEIVER = 'receiver@example.org';
/** The password of both sealdrop accounts (WebDAV logs in with it; nginx gets the same one). */
export const PASSWORD = 'bench password 12345';
const SECUPASS = 'bench secupass 12345';

/** A running sealdrop daemon. */
export interface SealdropServer extends RunningServer {
  httpPort: number;
  dir: string;
}

/** Environment for the daemon and its CLI: the inherited one minus SEALDROP_* and LOG_LEVEL, plus ours. */
function sealdropEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // SEALDROP_FROM_SOURCE (run the TypeScript sources instead of the dist/ bundle) is passed on.
  for (const [k, v] of Object.entries(process.env)) if ((!k.startsWith('SEALDROP_') || k === 'SEALDROP_FROM_SOURCE') && k !== 'LOG_LEVEL') env[k] = v;
  return { ...env, ...extra };
}

export async function api<T>(httpPort: number, method: string, route: string, body: unknown, token?: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${httpPort}${route}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: HTTP ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/** The node options and environment that package.json's `start` script runs the daemon with. */
function npmStartLaunch(): { flags: string[]; env: Record<string, string> } {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const words = (pkg.scripts?.start ?? '').split(/\s+/).filter(Boolean);
  const node = words.indexOf('node');
  const script = words.findIndex((w) => w.endsWith('daemon/bin/sealdrop.js'));
  if (node < 0 || script < node) throw new Error('package.json "start" does not run node daemon/bin/sealdrop.js');
  const env = Object.fromEntries(words.slice(0, node).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
  return { flags: words.slice(node + 1, script), env };
}

/**
 * Creates the accounts and SSH keys with the CLI, starts `sealdrop serve`, waits for the SFTP
 * port and /healthz, and activates both SecuPasses over the HTTP API.
 */
export async function startSealdrop(work: string, keys: { sender: string; receiver: string }, maxFileBytes: number, directWrites = false): Promise<SealdropServer> {
  const dir = path.join(work, 'sd');
  const cwd = path.join(dir, 'cwd');
  mkdirSync(cwd, { recursive: true });
  const [httpPort, sftpPort] = [await freePort(), await freePort()];
  const env = sealdropEnv({
    SEALDROP_HTTP__PORT: String(httpPort),
    SEALDROP_SFTP__PORT: String(sftpPort),
    // Metrics on a free port of its own: a daemon already running here keeps 9464.
    SEALDROP_METRICS__PORT: '0',
    SEALDROP_STORAGE__DATA_DIR: path.join(dir, 'data'),
    SEALDROP_CRYPTO__KEK_FILE: path.join(dir, 'kek'),
    SEALDROP_CRYPTO__S2K_ARGON2__PASSES: '1',
    SEALDROP_CRYPTO__S2K_ARGON2__PARALLELISM: '1',
    SEALDROP_CRYPTO__S2K_ARGON2__MEMORY_EXPONENT: '10',
    SEALDROP_ACCOUNTS__PASSWORD_HASH__MEMORY_COST: '256',
    SEALDROP_ACCOUNTS__PASSWORD_HASH__TIME_COST: '1',
    SEALDROP_DELIVERIES__MAX_FILE_BYTES: String(maxFileBytes),
    SEALDROP_STORAGE__DIRECT_WRITES: String(directWrites),
    SEALDROP_TREE__SEND_ON_SESSION_END: 'false',
    // 8 parallel sessions of one account is exactly the default limit; leave headroom for
    // sessions of the previous round that the server has not counted down yet.
    SEALDROP_SFTP__MAX_SESSIONS_PER_ACCOUNT: '16',
    SEALDROP_SERVER__SHUTDOWN_TIMEOUT_SECONDS: '5',
    LOG_LEVEL: 'warn',
  });
  const cli = (args: string[], input?: string) => runCommand(process.execPath, [SEALDROP_BIN, ...args], { env, cwd, input });

  progress('sealdrop: creating accounts and registering SSH keys');
  for (const [email, key] of [
    [SENDER, keys.sender],
    [RECEIVER, keys.receiver],
  ] as const) {
    await cli(['account', 'add', '--email', email, '--role', 'member', '--password-stdin'], `${PASSWORD}\n`);
    await cli(['ssh-key', 'add', '--email', email, '--key-file', `${key}.pub`]);
  }

  const stdoutFile = path.join(dir, 'daemon.stdout.log');
  const stderrFile = path.join(dir, 'daemon.stderr.log');
  progress('sealdrop: starting the daemon');
  // As deployed: the node flags and malloc tunables of `npm start` (README "Memory"; the unit and
  // the image use the same ones, a packaging test checks that).
  const deployed = npmStartLaunch();
  const nodeFlags = [...(process.env.SEALDROP_BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SEALDROP_BENCH_PROF}`] : []), ...deployed.flags, ...(process.env.SEALDROP_BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean)];
  const child = spawnServer(process.execPath, [...nodeFlags, SEALDROP_BIN, 'serve'], { env: { ...deployed.env, ...env }, cwd, stdoutFile, stderrFile });
  const healthy = async () => {
    if (!(await portOpen(sftpPort))) return false;
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    await res.arrayBuffer();
    return res.ok;
  };
  await waitUntil('sealdrop', healthy, child, 60_000).catch((err: Error) => {
    throw new Error(`${err.message}\nstdout:\n${tail(stdoutFile)}\nstderr:\n${tail(stderrFile)}`);
  });

  progress('sealdrop: activating the SecuPass of both accounts');
  for (const email of [SENDER, RECEIVER]) {
    const { token } = await api<{ token: string }>(httpPort, 'POST', '/api/v1/session', { email, password: PASSWORD });
    await api(httpPort, 'POST', '/api/v1/secupass', { secupass: SECUPASS }, token);
  }
  return { port: sftpPort, httpPort, child, dir, stdoutFile, stderrFile, stop: () => stopChild(child, 'SIGTERM', 15_000) };
}

/** The Debian nginx binary and the module of libnginx-mod-http-dav-ext (PROPFIND, OPTIONS). */
const NGINX_BIN = '/usr/sbin/nginx';
const NGINX_DAV_EXT = '/usr/lib/nginx/modules/ngx_http_dav_ext_module.so';

/** A running private nginx. */
export interface NginxServer extends RunningServer {
  /** The document root (PUT writes here). */
  root: string;
  errorLog: string;
}

/** A path as a quoted nginx configuration string. */
function ngxQuote(p: string): string {
  // Some directives expand $variables and none has an escape for them: refuse rather than guess.
  if (/["$\\]/.test(p)) throw new Error(`nginx: the path ${p} holds a character ($, " or \\) the configuration cannot hold; pick another --dir`);
  return `"${p}"`;
}

/**
 * Starts `nginx -g 'daemon off;'` as the current user with a private prefix, configuration, temp
 * and log folders in `dir`: WebDAV (the built-in dav module for PUT and friends, the dav-ext
 * module of libnginx-mod-http-dav-ext for PROPFIND) on a free loopback port, HTTP Basic with the
 * given credentials, plaintext to `<dir>/files`. Throws naming the Debian package that is missing.
 */
export async function startNginx(dir: string, user: string, password: string): Promise<NginxServer> {
  if (!existsSync(NGINX_BIN)) throw new Error(`${NGINX_BIN} is missing: install the Debian package nginx (and libnginx-mod-http-dav-ext)`);
  if (!existsSync(NGINX_DAV_EXT)) throw new Error(`${NGINX_DAV_EXT} is missing: install the Debian package libnginx-mod-http-dav-ext`);
  const root = path.join(dir, 'files');
  const tmp = path.join(dir, 'tmp');
  for (const d of [dir, root, tmp, path.join(dir, 'logs')]) mkdirSync(d, { recursive: true });
  // sha512-crypt, which nginx checks through crypt(3).
  const { stdout: hash } = await runCommand('openssl', ['passwd', '-6', '-stdin'], { input: `${password}\n` }).catch((err: Error) => {
    throw new Error(`${err.message} (Debian package openssl)`);
  });
  const htpasswd = path.join(dir, 'htpasswd');
  await writeFile(htpasswd, `${user}:${hash.trim()}\n`, { mode: 0o600 });
  const port = await freePort();
  const errorLog = path.join(dir, 'logs', 'error.log');
  const config = path.join(dir, 'nginx.conf');
  // As root the workers would otherwise switch to nobody, who cannot write into the work folder.
  const asRoot = process.getuid?.() === 0;
  await writeFile(
    config,
    [
      `load_module ${ngxQuote(NGINX_DAV_EXT)};`,
      ...(asRoot ? [`user ${os.userInfo().username};`] : []),
      'worker_processes 1;',
      `error_log ${ngxQuote(errorLog)} error;`,
      `pid ${ngxQuote(path.join(dir, 'nginx.pid'))};`,
      'events { worker_connections 64; }',
      'http {',
      `  access_log ${ngxQuote(path.join(dir, 'logs', 'access.log'))};`,
      `  client_body_temp_path ${ngxQuote(path.join(tmp, 'client_body'))};`,
      `  proxy_temp_path ${ngxQuote(path.join(tmp, 'proxy'))};`,
      `  fastcgi_temp_path ${ngxQuote(path.join(tmp, 'fastcgi'))};`,
      `  uwsgi_temp_path ${ngxQuote(path.join(tmp, 'uwsgi'))};`,
      `  scgi_temp_path ${ngxQuote(path.join(tmp, 'scgi'))};`,
      // What Debian's /etc/nginx/nginx.conf sets.
      '  sendfile on;',
      '  tcp_nopush on;',
      '  default_type application/octet-stream;',
      '  server {',
      `    listen 127.0.0.1:${port};`,
      `    root ${ngxQuote(root)};`,
      '    client_max_body_size 0;',
      '    location / {',
      '      auth_basic "bench";',
      `      auth_basic_user_file ${ngxQuote(htpasswd)};`,
      '      dav_methods PUT DELETE MKCOL COPY MOVE;',
      '      dav_ext_methods PROPFIND OPTIONS;',
      '      create_full_put_path on;',
      '      dav_access user:rw;',
      '    }',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const stdoutFile = path.join(dir, 'logs', 'nginx.stdout.log');
  const stderrFile = path.join(dir, 'logs', 'nginx.stderr.log');
  const child = spawnServer(NGINX_BIN, ['-p', `${dir}/`, '-e', errorLog, '-c', config, '-g', 'daemon off;'], { cwd: dir, stdoutFile, stderrFile });
  await waitUntil('nginx', () => portOpen(port), child, 20_000).catch((err: Error) => {
    throw new Error(`${err.message}\nstderr:\n${tail(stderrFile)}\nerror.log:\n${tail(errorLog)}`);
  });
  // SIGTERM is nginx's fast shutdown: the master stops its workers, then exits.
  return { port, child, stdoutFile, stderrFile, root, errorLog, stop: () => stopChild(child, 'SIGTERM', 10_000) };
}
