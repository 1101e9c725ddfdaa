/**
 * Runs the real daemon (`sealdrop serve`) and the CLI as child processes, on free ports, in a
 * private folder: data, key-encryption key outside it, TMPDIR, and logs captured to a file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHEAP_ARGON2_ENV } from './core-harness.ts';

/** The repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = path.join(ROOT, 'daemon/bin/sealdrop.js');

/** A private folder layout for one daemon. */
export interface Sandbox {
  dir: string;
  dataDir: string;
  tmpDir: string;
  logFile: string;
  kekFile: string;
  env: Record<string, string>;
  remove(): void;
}

/** Creates the folders and the base environment (cheap argon2, SMTP to `smtpPort` if given). */
export function sandbox(extraEnv: Record<string, string> = {}, smtpPort?: number): Sandbox {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-e2e-'));
  const dataDir = path.join(dir, 'data');
  const tmpDir = path.join(dir, 'tmp');
  mkdirSync(tmpDir);
  const kekFile = path.join(dir, 'secrets', 'kek');
  const env: Record<string, string> = {
    ...CHEAP_ARGON2_ENV,
    SEALDROP_STORAGE__DATA_DIR: dataDir,
    SEALDROP_CRYPTO__KEK_FILE: kekFile,
    SEALDROP_HTTP__PORT: '0',
    SEALDROP_SFTP__PORT: '0',
    SEALDROP_METRICS__PORT: '0',
    SEALDROP_MAIL__POLL_INTERVAL_MS: '200',
    SEALDROP_MAIL__RETRY_BASE_MS: '200',
    TMPDIR: tmpDir,
    ...(smtpPort ? { SEALDROP_MAIL__TRANSPORT: 'smtp', SEALDROP_MAIL__SMTP__HOST: '127.0.0.1', SEALDROP_MAIL__SMTP__PORT: String(smtpPort), SEALDROP_MAIL__SMTP__IGNORE_TLS: 'true' } : {}),
    ...extraEnv,
  };
  return { dir, dataDir, tmpDir, logFile: path.join(dir, 'daemon.log'), kekFile, env, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SEALDROP_') && k !== 'LOG_LEVEL') env[k] = v;
  return { ...env, ...extra };
}

/** Runs the CLI to completion. */
export async function runCli(sb: Sandbox, args: string[], input?: string, extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: childEnv({ ...sb.env, ...extraEnv }), cwd: sb.dir, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(input ?? '');
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  return { code, stdout, stderr };
}

/** A running daemon process. */
export interface DaemonProcess {
  url: string;
  port: number;
  /** The SFTP port (0 if SFTP is off). */
  sftpPort: number;
  child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** SIGTERM and wait; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait (a crash). */
  kill(): Promise<void>;
}

/** Starts `sealdrop serve` and waits until the HTTP API listens. */
export async function startDaemonProcess(sb: Sandbox, extraEnv: Record<string, string> = {}): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [BIN, 'serve'], { env: childEnv({ ...sb.env, ...extraEnv }), cwd: sb.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: WriteStream = createWriteStream(sb.logFile, { flags: 'a' });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const sftpOn = (extraEnv.SEALDROP_SFTP__ENABLED ?? sb.env.SEALDROP_SFTP__ENABLED) !== 'false';
  let sftpPort = 0;
  let startTimer: NodeJS.Timeout | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (d: Buffer) => {
      const text = d.toString();
      output += text;
      log.write(text);
      const s = /"address":"[^"]*:(\d+)"[^\n]*"msg":"SFTP listening"/.exec(output);
      if (s) sftpPort = Number(s[1]);
      const m = /"url":"https?:\/\/[^:]+:(\d+)"/.exec(output);
      if (m && (!sftpOn || sftpPort)) resolve(Number(m[1]));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code) => reject(new Error(`daemon exited with ${code} before listening:\n${output}`)));
    startTimer = setTimeout(() => {
      child.kill('SIGKILL'); // never leave a half-started daemon behind
      reject(new Error(`daemon did not start within 30 s:\n${output}`));
    }, 30_000);
  }).finally(() => clearTimeout(startTimer));
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    sftpPort,
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const code = await exited;
      await new Promise<void>((resolve) => log.end(resolve));
      return code;
    },
    async kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      await new Promise<void>((resolve) => log.end(resolve));
    },
  };
}
