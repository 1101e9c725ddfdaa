/** WebDAV clients for the outside-in tests: curl, rclone (its webdav backend) and litmus. */
import { execFile, spawn } from 'node:child_process';

/** The result of a client process. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with an optional stdin; never rejects. */
export function run(cmd: string, args: string[], input?: Buffer | string, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => (stderr += String(err)));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** curl with `-sS`; `-w` prints the status last on stdout. */
export async function curl(args: string[], input?: Buffer | string): Promise<Run & { status: number; body: string }> {
  const r = await run('curl', ['-sS', '-g', '-w', '\n%{http_code}', ...args], input);
  const cut = r.stdout.lastIndexOf('\n');
  return { ...r, status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
}

/** rclone with an on-the-fly webdav remote (`remote(path)` names a path on it). */
export async function rcloneDav(url: string, user: string, password: string, args: (remote: (p: string) => string) => string[]): Promise<Run> {
  const obscured = (await run('rclone', ['obscure', password])).stdout.trim();
  const remote = (p: string) => `:webdav,url='${url}',vendor=other,user='${user}',pass=${obscured}:${p}`;
  return new Promise((resolve) => {
    execFile('rclone', [...args(remote), '--config', '/dev/null', '-v'], { maxBuffer: 1 << 22 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Summary of one litmus suite. */
export interface LitmusSuite {
  suite: string;
  run: number;
  passed: number;
  failed: number;
}

/** Runs litmus (all suites, keep going after failures) and parses its summaries. */
export async function litmus(url: string, user: string, password: string, workDir: string): Promise<{ suites: LitmusSuite[]; output: string }> {
  const r = await new Promise<Run>((resolve) => {
    execFile('litmus', ['-k', url, user, password], { cwd: workDir, maxBuffer: 1 << 24, timeout: 300_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
  const output = r.stdout + r.stderr;
  const suites: LitmusSuite[] = [];
  for (const m of output.matchAll(/<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed/g)) {
    suites.push({ suite: m[1] as string, run: Number(m[2]), passed: Number(m[3]), failed: Number(m[4]) });
  }
  return { suites, output };
}
