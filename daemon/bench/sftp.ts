/**
 * The measuring side: the OpenSSH `sftp` client in batch mode with key authentication, timed
 * around the whole process; random input files; RSS sampling of a process from /proc.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import { checkAborted, runTimed } from './proc.ts';

/** One sftp login: server port, user and its private key. */
export interface SftpTarget {
  port: number;
  user: string;
  keyFile: string;
}

/** The outcome of one sftp process. */
export interface SftpRun {
  seconds: number;
  stdout: string;
  stderr: string;
}

let batchCounter = 0;

/**
 * Runs `/usr/bin/sftp -b <batch>` with the given commands; resolves with the wall time of the
 * whole process (connect, key exchange, authentication, commands, exit). Rejects on failure.
 */
export async function sftpBatch(workDir: string, target: SftpTarget, cipher: string, commands: string[], timeoutMs = 120_000): Promise<SftpRun> {
  checkAborted();
  const batchFile = path.join(workDir, `batch-${process.pid}-${++batchCounter}.txt`);
  await writeFile(batchFile, `${commands.join('\n')}\n`);
  const args = [
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'LogLevel=ERROR',
    '-o', 'IdentitiesOnly=yes',
    '-i', target.keyFile,
    '-c', cipher,
    '-P', String(target.port),
    '-b', batchFile,
    `${target.user}@127.0.0.1`,
  ];
  const { seconds, stdout, stderr, code, signal, timedOut, spawnError } = await runTimed('/usr/bin/sftp', args, timeoutMs);
  if (spawnError) throw new Error(`could not run /usr/bin/sftp: ${spawnError.message} (Debian package openssh-client)`);
  if (timedOut) {
    throw new Error(`sftp ${target.user}@127.0.0.1:${target.port} (${cipher}) hung: stopped after ${Math.round(timeoutMs / 1000)} s without finishing\n  batch: ${commands.join(' | ')}`);
  }
  if (code !== 0) {
    throw new Error(`sftp ${target.user}@127.0.0.1:${target.port} (${cipher}) failed (exit ${code ?? signal}): ${(stderr || stdout).trim().slice(-1500) || '(no output)'}\n  batch: ${commands.join(' | ')}`);
  }
  return { seconds, stdout, stderr };
}

/**
 * Escapes a path for an sftp batch line: every character outside a safe set gets a backslash.
 * Unquoted escapes are the form sftp handles right for paths it globs (get and put sources):
 * `\[`, `\*`, `\?`, `\\` stay escaped for glob(3), other escapes are removed. (Inside double quotes
 * sftp doubles the backslash of `\[`, and an unescaped `[...]` is a glob pattern.)
 */
export function quote(p: string): string {
  return p.replace(/[^A-Za-z0-9._/@+:=,%\u0080-\uffff-]/g, (ch) => `\\${ch}`);
}

/** Writes `bytes` random bytes to `file`, 1 MiB at a time. */
export async function makeRandomFile(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  const chunk = 1024 * 1024;
  for (let done = 0; done < bytes; done += chunk) {
    checkAborted();
    if (!out.write(randomBytes(Math.min(chunk, bytes - done)))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
}

/** Memory figures of a process from /proc/<pid>/status, in bytes. */
export interface ProcMemory {
  rss: number;
  hwm: number;
  /** Anonymous pages of the RSS (heaps, buffers). */
  anon: number;
  /** File-backed pages of the RSS (the node binary, libraries, addons). */
  file: number;
}

/** Reads VmRSS and VmHWM of a process (bytes), or null if it is gone. */
export function readProcMemory(pid: number): ProcMemory | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem') };
}

/** Samples a process's VmRSS every `intervalMs` until stopped. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private readonly series: ProcMemory[] = [];
  private readonly first: ProcMemory | null;
  readonly before: number;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 50,
  ) {
    this.first = readProcMemory(pid);
    this.before = this.first?.rss ?? 0;
  }

  start(): this {
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  private sample(): void {
    const m = readProcMemory(this.pid);
    if (m) this.series.push(m);
  }

  /**
   * Stops sampling; returns before/peak/after RSS, the peak of the first quarter of the samples
   * (the transfer's working set once it is under way; whatever rises after it grew with the
   * bytes moved), the anonymous and file-backed parts of the peak sample, and the process's
   * VmHWM (lifetime peak).
   */
  stop(): { before: number; peak: number; peakAnon: number; peakFile: number; earlyPeak: number; after: number; hwm: number; samples: number } {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    const m = readProcMemory(this.pid);
    const all = this.first ? [this.first, ...this.series] : this.series;
    const top = all.reduce<ProcMemory | undefined>((a, b) => (a === undefined || b.rss > a.rss ? b : a), undefined);
    const early = this.series.slice(0, Math.max(1, Math.ceil(this.series.length / 4)));
    return {
      before: this.before,
      peak: Math.max(this.before, ...this.series.map((x) => x.rss)),
      peakAnon: top?.anon ?? 0,
      peakFile: top?.file ?? 0,
      earlyPeak: Math.max(this.before, ...early.map((x) => x.rss)),
      after: m?.rss ?? 0,
      hwm: m?.hwm ?? 0,
      samples: this.series.length,
    };
  }
}
