/**
 * How busy the machine was with work other than this benchmark during a transfer: the CPU time
 * of the whole machine (/proc/stat) minus that of this process tree (this process, the servers
 * and clients it started and their children, reaped ones included through cutime/cstime).
 * And the CPU time of one server during a transfer (serverCpu).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** CPU time so far in clock ticks: the whole machine's busy time and this process tree's. */
export interface CpuSnapshot {
  total: number;
  ours: number;
  at: bigint;
}

interface ProcStat {
  ppid: number;
  ticks: number;
}

function procStat(pid: string): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may contain spaces: fields start after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number) => Number(f[i] ?? 0);
  // state ppid ... utime(11) stime(12) cutime(13) cstime(14), counted from the state field.
  return { ppid: n(1), ticks: n(11) + n(12) + n(13) + n(14) };
}

/** Every process's CPU ticks and parent, and the children of each pid. */
function scanProcesses(): { stats: Map<number, ProcStat>; children: Map<number, number[]> } {
  const stats = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(name);
    if (s) stats.set(Number(name), s);
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) {
    const list = children.get(s.ppid) ?? [];
    list.push(pid);
    children.set(s.ppid, list);
  }
  return { stats, children };
}

/** The pids of a process and of all its living descendants. */
function tree(root: number, children: Map<number, number[]>): number[] {
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop() as number;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Takes a snapshot of the machine's and this process tree's CPU time. */
export function cpuSnapshot(): CpuSnapshot {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user already)
  const total = (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0);
  const { stats, children } = scanProcesses();
  const ours = tree(process.pid, children).reduce((sum, pid) => sum + (stats.get(pid)?.ticks ?? 0), 0);
  return { total, ours, at: process.hrtime.bigint() };
}

/**
 * CPU seconds a server has used so far: the process and its living descendants, plus the
 * descendants it has reaped (cutime/cstime) — for sshd, the per-connection sshd and its
 * sftp-server once the session has ended. Also tells how many descendants are alive.
 */
export function serverCpu(pid: number): { seconds: number; descendants: number } {
  const { stats, children } = scanProcesses();
  const pids = tree(pid, children);
  const ticks = pids.reduce((sum, p) => sum + (stats.get(p)?.ticks ?? 0), 0);
  return { seconds: ticks / clockTicks(), descendants: pids.length - 1 };
}

/**
 * CPU seconds (user + system) of this process's children that have ended and been reaped so
 * far, with their own reaped children (cutime/cstime of /proc/self/stat): the measured clients
 * (sftp with its ssh, curl, openssl) once they exit; the servers run on and are not in it.
 */
export function reapedChildrenCpu(): number {
  const text = readFileSync('/proc/self/stat', 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13] ?? 0) + Number(f[14] ?? 0)) / clockTicks();
}

/** Average number of cores busy with other work between two snapshots. */
export function otherCores(a: CpuSnapshot, b: CpuSnapshot): number {
  const seconds = Number(b.at - a.at) / 1e9;
  if (seconds <= 0) return 0;
  const foreign = b.total - a.total - (b.ours - a.ours);
  return Math.max(0, foreign / clockTicks() / seconds);
}
