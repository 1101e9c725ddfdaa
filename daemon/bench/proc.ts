/**
 * Benchmark plumbing: progress output, child processes that are tracked and stopped on exit
 * (also on Ctrl-C), commands run to completion, free ports and waiting for a listener.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import net from 'node:net';

/** A progress line on stderr (the report goes to stdout). */
export function progress(message: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[bench ${t}] ${message}\n`);
}

/** Writes report text to stdout. */
export function print(text = ''): void {
  process.stdout.write(`${text}\n`);
}

const children = new Set<ChildProcess>();
let aborting = false;

/** Thrown for any step started after abort() (Ctrl-C): the run unwinds without doing more. */
export class AbortedError extends Error {
  constructor() {
    super('the benchmark was interrupted');
  }
}

/** Marks the run as interrupted: no new child processes from now on. */
export function abort(): void {
  aborting = true;
}

/** Throws AbortedError once the run is interrupted. */
export function checkAborted(): void {
  if (aborting) throw new AbortedError();
}

/** Spawns a child that is stopped by stopAllChildren() if it still runs. */
export function spawnTracked(cmd: string, args: string[], options: SpawnOptions): ChildProcess {
  checkAborted();
  const child = spawn(cmd, args, options);
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

/** Resolves when the child has exited (at once if it has already). */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: -1, signal: null }));
  });
}

/** Sends `signal` to one child by its PID, then SIGKILL after `graceMs`; resolves when it is gone. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const done = exited(child);
  try {
    process.kill(child.pid, signal);
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, graceMs);
  await done;
  clearTimeout(timer);
}

/** Stops every tracked child that still runs (each by its own PID). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c)));
}

/** Result of a command run to completion. */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Options of runCommand. */
export interface RunOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Reject on a non-zero exit (default true). */
  check?: boolean;
}

/** Runs a command to completion, collecting its output. */
export async function runCommand(cmd: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  const child = spawnTracked(cmd, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(options.input ?? '');
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  const { code } = await exited(child);
  // Let the pipes drain after the exit event.
  await new Promise((r) => setImmediate(r));
  if (spawnError) throw new Error(`${cmd}: ${spawnError.message}`);
  if (options.check !== false && code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${(stderr || stdout).trim().slice(-2000)}`);
  }
  return { code, stdout, stderr };
}

/** A timed run of one client process (see runTimed). */
export interface TimedRun {
  /** Wall time around the whole process, in seconds. */
  seconds: number;
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** It was stopped (SIGTERM by PID, then SIGKILL) after the timeout. */
  timedOut: boolean;
  /** It could not be started at all. */
  spawnError: Error | undefined;
}

/**
 * Runs a measured client (curl, sftp) to completion, timed around the whole process, stopping
 * it after `timeoutMs`; the caller turns failures into messages naming what it measured.
 */
export async function runTimed(cmd: string, args: string[], timeoutMs: number): Promise<TimedRun> {
  checkAborted();
  const started = process.hrtime.bigint();
  const child = spawnTracked(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stopChild(child, 'SIGTERM', 3000);
  }, timeoutMs);
  const { code, signal } = await exited(child).finally(() => clearTimeout(timer));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  // Let the pipes drain after the exit event.
  await new Promise((r) => setImmediate(r));
  checkAborted();
  return { seconds, stdout, stderr, code, signal, timedOut, spawnError };
}

/** Spawns a long-running server whose stdout and stderr go to log files. */
export function spawnServer(cmd: string, args: string[], options: SpawnOptions & { stdoutFile: string; stderrFile: string }): ChildProcess {
  const { stdoutFile, stderrFile, ...rest } = options;
  const child = spawnTracked(cmd, args, { ...rest, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(createWriteStream(stdoutFile));
  child.stderr?.pipe(createWriteStream(stderrFile));
  return child;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** True if something accepts a TCP connection on 127.0.0.1:port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `ready` until true; fails after `timeoutMs` or as soon as `child` exits. */
export async function waitUntil(what: string, ready: () => Promise<boolean>, child: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what}: the process exited (code ${child.exitCode}, signal ${child.signalCode}) before it was ready`);
    if (await ready().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what}: not ready after ${timeoutMs / 1000} s`);
}
