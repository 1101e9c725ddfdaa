/**
 * Measured samples and their medians, shared by the SFTP and the WebDAV parts of the report.
 */
import os from 'node:os';
import { print } from './proc.ts';

/** One timed run. */
export interface Sample {
  seconds: number;
  bytes: number;
  /** Cores busy with processes outside this benchmark during the transfer (on average). */
  other?: number;
  /** CPU seconds the server (its process tree) spent on the transfer, where measured. */
  serverCpu?: number | undefined;
  /** CPU seconds the measured client processes (sftp with ssh, curl, openssl) spent, where measured. */
  clientCpu?: number | undefined;
}

/** What `timed` (run.ts) reports about one transfer. */
export interface Timed<T> {
  value: T;
  other: number;
  serverCpu?: number | undefined;
  clientCpu: number;
}

/** The sample of one timed transfer of `bytes`. */
export function sampleOf(t: Timed<{ seconds: number }>, bytes: number): Sample {
  return { seconds: t.value.seconds, bytes, other: t.other, serverCpu: t.serverCpu, clientCpu: t.clientCpu };
}

/** Server CPU seconds per GB (1e9 bytes) of a sample, if measured. */
export const cpuPerGB = (s: Sample) => (s.serverCpu === undefined ? undefined : s.serverCpu / (s.bytes / 1e9));

/** Client CPU seconds per GB of a sample, if measured. */
export const clientCpuPerGB = (s: Sample) => (s.clientCpu === undefined ? undefined : s.clientCpu / (s.bytes / 1e9));

/** MB/s of a sample (1 MB = 1e6 bytes). */
export const mbps = (s: Sample) => s.bytes / 1e6 / s.seconds;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Samples by measure and server, and the errors of failed steps. */
export class Results {
  private readonly samples = new Map<string, Sample[]>();
  readonly errors: string[] = [];

  add(measure: string, server: string, sample: Sample): void {
    const key = `${measure}|${server}`;
    const list = this.samples.get(key) ?? [];
    list.push(sample);
    this.samples.set(key, list);
  }

  get(measure: string, server: string): Sample[] {
    return this.samples.get(`${measure}|${server}`) ?? [];
  }

  /** Median server CPU seconds per GB, or undefined without measured samples. */
  medianCpuPerGB(measure: string, server: string): number | undefined {
    const list = this.get(measure, server).map(cpuPerGB).filter((v): v is number => v !== undefined);
    return list.length ? median(list) : undefined;
  }

  /** Median client CPU seconds per GB, or undefined without measured samples. */
  medianClientCpuPerGB(measure: string, server: string): number | undefined {
    const list = this.get(measure, server).map(clientCpuPerGB).filter((v): v is number => v !== undefined);
    return list.length ? median(list) : undefined;
  }

  /** Median MB/s, or undefined without samples. */
  medianMbps(measure: string, server: string): number | undefined {
    const list = this.get(measure, server);
    return list.length ? median(list.map(mbps)) : undefined;
  }
}

/** The daemon's memory during one transfer (bytes). */
export interface RssRecord {
  label: string;
  before: number;
  peak: number;
  /** Anonymous and file-backed parts of the peak sample. */
  peakAnon: number;
  peakFile: number;
  /** Peak over the first quarter of the samples. */
  earlyPeak: number;
  after: number;
  hwm: number;
  samples: number;
}

/** The memory table of a part of the bench. */
export function printRssTable(title: string, rss: RssRecord[]): void {
  print(title);
  print();
  print(`| transfer | RSS before | peak RSS, first quarter | peak RSS (anon + file) | RSS after | VmHWM after | samples |`);
  print(`|---|---:|---:|---:|---:|---:|---:|`);
  for (const r of rss) print(`| ${r.label} | ${fmtMB(r.before)} | ${fmtMB(r.earlyPeak)} | ${fmtMB(r.peak)} (${fmtMB(r.peakAnon)} + ${fmtMB(r.peakFile)}) | ${fmtMB(r.after)} | ${fmtMB(r.hwm)} | ${r.samples} |`);
  print();
  print(`anon: heaps and buffers; file: the pages of the node binary, libraries and addons the daemon has touched (about 55 MB here, mostly the node binary: a bare \`node -e\` has ~41 MB of RSS).`);
  print();
}

export function fmtMbps(v: number | undefined): string {
  return v === undefined ? 'n/a' : v.toFixed(1);
}

export function fmtCpu(cpuSecondsPerGB: number | undefined): string {
  return cpuSecondsPerGB === undefined ? 'n/a' : cpuSecondsPerGB.toFixed(2);
}

export function fmtMB(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/** A paragraph on how busy the machine was with other work during the given timed runs. */
export function printForeignLoad(samples: Sample[]): void {
  const others = samples.map((x) => x.other ?? 0);
  if (!others.length) return;
  const disturbed = others.filter((x) => x > 0.2).length;
  print(`Other processes on the machine: ${disturbed} of ${others.length} timed runs had more than 0.2 cores busy outside this benchmark (max ${Math.max(...others).toFixed(2)} of ${os.availableParallelism()} cores); load average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}.`);
  if (disturbed > 0) print(`**Those runs are slowed by foreign load: compare the individual runs below before trusting a median.**`);
  print();
}
