/**
 * `npm run bench`: SFTP throughput of sealdrop (encrypted at rest) beside a private OpenSSH
 * sshd + sftp-server (plaintext to disk), with the same client (/usr/bin/sftp in batch mode, key
 * authentication) and cipher; plus the daemon's RSS during one large upload and 8 parallel
 * uploads. Then WebDAV (webdav.ts): curl PUT/GET against sealdrop's /dav/ and a private nginx,
 * beside `openssl enc` as the cipher ceiling. A benchmark, not a test: it prints a Markdown report
 * on stdout, progress on stderr.
 *
 *   npm run bench -- [--only sftp|webdav] [--size MiB] [--runs N] [--quick] [--dir DIR] [--keep] [--direct-writes]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, statfs, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSnapshot, otherCores, reapedChildrenCpu, serverCpu } from './cpu.ts';
import { boundMbps, CORES, measureEncryptionFloor, type EncryptionFloor } from './floor.ts';
import { abort, AbortedError, checkAborted, print, progress, runCommand, sleep, stopAllChildren } from './proc.ts';
import { clientCpuPerGB, cpuPerGB, fmtCpu, fmtMB, fmtMbps, mbps, printForeignLoad, printRssTable, Results, sampleOf, type RssRecord, type Sample, type Timed } from './results.ts';
import { makeKey, RECEIVER, ROOT, SENDER, startOpenSsh, startSealdrop, tail, type RunningServer, type SealdropServer } from './servers.ts';
import { makeRandomFile, quote, RssSampler, sftpBatch, type SftpTarget } from './sftp.ts';
import { reportWebdav, runWebdav, webdavVersions, type WebdavOutcome } from './webdav.ts';

const CIPHERS = [
  { name: 'aes128-gcm@openssh.com', short: 'aes128-gcm' },
  { name: 'chacha20-poly1305@openssh.com', short: 'chacha20' },
] as const;
const AES = CIPHERS[0];
const PAR_COUNT = 8;
const PAR_MIB = 128;
const MiB = 1024 * 1024;
const RSS_TARGET_MB = 150;
const OUTBOX = `/outbox/${RECEIVER}`;

/** Time allowed for one sftp process moving `bytes`: a minute plus 5 MB/s, so a hung transfer fails. */
const limitFor = (bytes: number) => 60_000 + Math.ceil(bytes / 5e6) * 1000;

type Server = 'openssh' | 'sealdrop';

/** The parts of the benchmark: SFTP (sealdrop vs OpenSSH) and WebDAV (sealdrop vs nginx). */
const PARTS = ['sftp', 'webdav'] as const;
type Part = (typeof PARTS)[number];

interface Options {
  parts: ReadonlySet<Part>;
  sizeMiB: number;
  runs: number;
  dir: string;
  keep: boolean;
  directWrites: boolean;
}

const HELP = `Usage: npm run bench -- [--only sftp|webdav] [--size MiB] [--runs N] [--quick] [--dir DIR] [--keep] [--direct-writes]

  --only PART  run one part: sftp (sealdrop vs OpenSSH) or webdav (sealdrop vs nginx, and
               openssl enc as the cipher ceiling); default: both, SFTP first
  --size MiB   size of the single-file transfers (default 1024)
  --runs N     runs per measure; the median is reported (default 3)
  --quick      smoke run: --size 256 --runs 1 (explicit --size/--runs win)
  --dir DIR    create the temporary work folder in DIR (default: the OS temp folder)
  --keep       keep the work folder (logs, configs) instead of deleting it
  --direct-writes
               run the daemon with storage.directWrites: true (blobs written and read with
               O_DIRECT, past the page cache) instead of the default (through it)`;

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      size: { type: 'string' },
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      dir: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'direct-writes': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    print(HELP);
    process.exit(0);
  }
  const int = (v: string | undefined, name: string, fallback: number) => {
    if (v === undefined) return fallback;
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`--${name} must be a positive integer`);
    return Number(v);
  };
  const only = values.only;
  if (only !== undefined && !(PARTS as readonly string[]).includes(only)) throw new Error(`--only must be one of ${PARTS.join(', ')}`);
  return {
    parts: new Set<Part>(only === undefined ? PARTS : [only as Part]),
    sizeMiB: int(values.size, 'size', values.quick ? 256 : 1024),
    runs: int(values.runs, 'runs', values.quick ? 1 : 3),
    dir: path.resolve(values.dir ?? os.tmpdir()),
    keep: values.keep ?? false,
    directWrites: values['direct-writes'] ?? false,
  };
}

// ------------------------------------------------------------------ the run

let workDir: string | undefined;
let keepWork = false;
let cleaning: Promise<void> | undefined;
const servers: RunningServer[] = [];

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    await stopAllChildren();
    if (workDir) {
      if (keepWork) progress(`kept the work folder ${workDir}`);
      else await rm(workDir, { recursive: true, force: true, maxRetries: 5 }).catch((err: unknown) => progress(`could not remove ${workDir}: ${String(err)}`));
    }
  })();
  return cleaning;
}

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const) {
  process.on(signal, () => {
    progress(`${signal}: stopping the servers and removing the work folder`);
    abort();
    void cleanup().finally(() => process.exit(code));
  });
}

/** Fails early when the disk holding the work folder runs low. */
async function ensureSpace(need: number): Promise<void> {
  const s = await statfs(workDir as string);
  const free = s.bavail * s.bsize;
  if (free < need + 2 * 1024 * MiB) throw new Error(`only ${(free / 1e9).toFixed(1)} GB free in ${workDir}; need ${((need + 2 * 1024 * MiB) / 1e9).toFixed(1)} GB`);
}

/** Flushes dirty pages before a timed transfer so earlier writes do not slow it down. */
async function settle(): Promise<void> {
  await runCommand('sync', []);
}

/** Newest modification time (ISO) of the non-test files under `dir`, and that file. */
function newestSource(dir: string): { iso: string; file: string } {
  let newest = 0;
  let file = '';
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!e.name.endsWith('.test.ts')) {
        const t = statSync(p).mtimeMs;
        if (t > newest) [newest, file] = [t, p];
      }
    }
  };
  walk(dir);
  return { iso: new Date(newest).toISOString(), file: path.relative(ROOT, file) };
}

/**
 * Throws when a source file changed after the bundle was built: daemon/bin/sealdrop.js would
 * then run the TypeScript sources under tsx, a different program (~30 MB more RSS here).
 */
function ensureBundleFresh(when: string): void {
  if (process.env.SEALDROP_FROM_SOURCE) return;
  let build: string;
  try {
    build = statSync(path.join(ROOT, 'dist/BUILD')).mtime.toISOString();
  } catch {
    throw new Error(`${when}: dist/BUILD is missing (npm run build)`);
  }
  const newest = newestSource(path.join(ROOT, 'daemon/src'));
  if (newest.iso > build) {
    throw new Error(`${when}: ${newest.file} changed at ${newest.iso}, after the bundle was built (${build}), so the daemon would run from the TypeScript sources, not the bundle that \`npm start\` runs. Run the benchmark again and leave daemon/src alone while it runs.`);
  }
}

function machineInfo(parts: ReadonlySet<Part>, directWrites: boolean): string[] {
  const cmd = (c: string, args: string[]) => {
    try {
      return execFileSync(c, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT }).trim();
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      return (e.stderr ?? '').trim() || `(${e.message.split('\n')[0]})`;
    }
  };
  // ssh -V prints its version on stderr.
  const ssh = spawnSync('ssh', ['-V'], { encoding: 'utf8' });
  const sshVersion = `${ssh.stderr ?? ''}${ssh.stdout ?? ''}`.trim() || 'ssh -V failed';
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const dirty = cmd('git', ['status', '--porcelain', '--', 'daemon/src', 'daemon/bin', 'daemon/patches']).split('\n').filter(Boolean).length;
  const mtime = (f: string) => {
    try {
      return statSync(path.join(ROOT, f)).mtime.toISOString();
    } catch {
      return undefined;
    }
  };
  const bundle = mtime('dist/sealdrop.mjs');
  const build = mtime('dist/BUILD');
  const fresh = build !== undefined && build >= newestSource(path.join(ROOT, 'daemon/src')).iso;
  const entry = `daemon/bin/sealdrop.js; dist/ bundle ${bundle ? `present, ${fresh ? 'newer than' : 'OLDER than'} daemon/src (dist/BUILD ${build ?? 'missing'})` : 'absent'}${process.env.SEALDROP_FROM_SOURCE ? `, SEALDROP_FROM_SOURCE=${process.env.SEALDROP_FROM_SOURCE}` : ''}`;
  return [
    `- date: ${new Date().toISOString()}`,
    `- machine: nproc ${cmd('nproc', [])}, ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${os.release()}`,
    `- node ${process.version}; ${sshVersion}`,
    `- load average at the start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    `- sealdrop: git ${cmd('git', ['rev-parse', '--short', 'HEAD'])}${dirty ? ` plus ${dirty} uncommitted change(s) in daemon/src, daemon/bin, daemon/patches` : ''}; entry ${entry}`,
    `- sealdrop storage.directWrites: ${directWrites ? 'true (--direct-writes: blobs written and read with O_DIRECT, past the page cache)' : 'false (the default: blobs go through the page cache)'}`,
    ...(parts.has('webdav') ? webdavVersions() : []),
  ];
}

async function main(): Promise<number> {
  const opt = parseOptions();
  keepWork = opt.keep;
  const size = opt.sizeMiB * MiB;
  const parSize = PAR_MIB * MiB;
  const sftp = opt.parts.has('sftp');
  const webdav = opt.parts.has('webdav');
  // Measure what `npm start` runs: the bundle, rebuilt as its prestart does (a stale bundle would
  // make the bin fall back to the sources under tsx, a different program).
  if (!process.env.SEALDROP_FROM_SOURCE) {
    progress('building the bundle (npm run build)');
    const built = spawnSync(process.execPath, [path.join(ROOT, 'daemon/scripts/build.mjs')], { cwd: ROOT, encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`npm run build failed:\n${built.stderr}`);
  }
  const header = machineInfo(opt.parts, opt.directWrites);
  for (const line of header) progress(line.slice(2));

  await mkdir(opt.dir, { recursive: true });
  workDir = await mkdtemp(path.join(opt.dir, 'sealdrop-bench-'));
  const work = workDir;
  progress(`work folder ${work}`);
  await ensureSpace(size * 2 + (sftp ? parSize * 2 : 0));

  const results = new Results();
  const rss: RssRecord[] = [];
  const webdavRss: RssRecord[] = [];

  // Keys, input files.
  const senderKey = await makeKey(path.join(work, 'client_key'), 'bench sender');
  // sealdrop refuses to register one key for two accounts, so the receiver has its own key.
  const receiverKey = await makeKey(path.join(work, 'client_key_receiver'), 'bench receiver');
  const input = path.join(work, `input-${opt.sizeMiB}MiB.bin`);
  const parInput = path.join(work, `input-${PAR_MIB}MiB.bin`);
  const empty = path.join(work, 'empty');
  progress(`writing random input files (${opt.sizeMiB} MiB${sftp ? ` and ${PAR_MIB} MiB` : ''})`);
  await makeRandomFile(input, size);
  if (sftp) await makeRandomFile(parInput, parSize);
  await writeFile(empty, '');
  progress('measuring the encryption floor (AES-256-CFB and SHA-1 in this process)');
  const floor = measureEncryptionFloor();

  // Servers (nginx is started by the WebDAV part).
  let ossh: RunningServer | undefined;
  if (sftp) {
    progress('starting OpenSSH sshd');
    ossh = await startOpenSsh(path.join(work, 'openssh'), `${senderKey}.pub`);
    servers.push(ossh);
  }
  ensureBundleFresh('before starting the daemon');
  const sd: SealdropServer = await startSealdrop(work, { sender: senderKey, receiver: receiverKey }, 2 ** 40, opt.directWrites);
  servers.push(sd);
  // The bin chose between the bundle and the sources as the daemon started.
  ensureBundleFresh('as the daemon started');
  const sdPid = sd.child.pid as number;
  progress(`${ossh ? `OpenSSH on port ${ossh.port} (pid ${ossh.child.pid}); ` : ''}sealdrop SFTP on ${sd.port}, HTTP on ${sd.httpPort} (pid ${sdPid})`);

  const daemonAlive = () => {
    if (sd.child.exitCode !== null || sd.child.signalCode !== null) {
      throw new Error(`the sealdrop daemon has exited (code ${sd.child.exitCode}, signal ${sd.child.signalCode})`);
    }
  };

  /** Runs one measured step; a failure is recorded and the benchmark goes on. */
  const attempt = async (what: string, fn: () => Promise<void>) => {
    checkAborted();
    const logFrom = fileSize(sd.stdoutFile);
    const errFrom = fileSize(sd.stderrFile);
    try {
      await fn();
    } catch (err) {
      if (err instanceof AbortedError) throw err;
      let msg = `${what}: ${(err as Error).message}`;
      if (what.includes('sealdrop')) {
        const out = readFrom(sd.stdoutFile, logFrom).trim();
        const errText = readFrom(sd.stderrFile, errFrom).trim();
        if (out) msg += `\n  daemon log meanwhile (last lines):\n    ${out.split('\n').slice(-8).map((l) => l.slice(0, 1500)).join('\n    ')}`;
        if (errText) msg += `\n  daemon stderr meanwhile:\n    ${errText.split('\n').slice(-20).join('\n    ')}`;
        if (!out && !errText) msg += '\n  (the daemon logged nothing at warn level or above meanwhile)';
      }
      results.errors.push(msg);
      progress(`FAILED ${msg}`);
    }
  };

  const mbpsText = (s: Sample) => `${s.seconds.toFixed(2)} s, ${mbps(s).toFixed(1)} MB/s (other processes: ${(s.other ?? 0).toFixed(2)} cores)`;
  /**
   * Runs a transfer, measuring how busy the machine was with other work meanwhile and, given the
   * server's pid, the CPU seconds that server spent (after its per-session processes are reaped).
   */
  const timed = async <T>(fn: () => Promise<T>, server?: number): Promise<Timed<T>> => {
    const s0 = server === undefined ? undefined : serverCpu(server);
    const c0 = reapedChildrenCpu();
    const a = cpuSnapshot();
    const value = await fn();
    const other = otherCores(a, cpuSnapshot());
    const clientCpu = reapedChildrenCpu() - c0;
    if (server === undefined || s0 === undefined) return { value, other, clientCpu };
    let s1 = serverCpu(server);
    for (let i = 0; i < 100 && s1.descendants > s0.descendants; i++) {
      await sleep(50);
      s1 = serverCpu(server);
    }
    return { value, other, serverCpu: s1.seconds - s0.seconds, clientCpu };
  };

  if (sftp && ossh) {
    const dlDir = path.join(work, 'downloads');
    const osshDir = path.join(work, 'openssh-files');
    await mkdir(dlDir);
    await mkdir(osshDir);
    const user = os.userInfo().username;
    const osshT: SftpTarget = { port: ossh.port, user, keyFile: senderKey };
    const osshPid = ossh.child.pid as number;
    const sdSender: SftpTarget = { port: sd.port, user: SENDER, keyFile: senderKey };
    const sdReceiver: SftpTarget = { port: sd.port, user: RECEIVER, keyFile: receiverKey };

    // -------------------------------------------------------------- download sources
    // Both servers get the file once, untimed; sealdrop's goes out as a delivery to the receiver.
    const osshSource = path.join(osshDir, 'dl-source.bin');
    let inboxFile: string | undefined;
    await attempt('OpenSSH download source', async () => {
      progress('OpenSSH: uploading the download source');
      await sftpBatch(work, osshT, AES.name, [`put ${quote(input)} ${quote(osshSource)}`], limitFor(size));
    });
    await attempt('sealdrop download source', async () => {
      progress('sealdrop: uploading the download source (first upload after start; RSS sampled)');
      const sampler = new RssSampler(sdPid).start();
      try {
        await sftpBatch(work, sdSender, AES.name, [`put ${quote(input)} ${quote(`${OUTBOX}/dl-source.bin`)}`], limitFor(size));
      } finally {
        rss.push({ label: `download source (first ${opt.sizeMiB} MiB upload after start, aes128-gcm, untimed)`, ...sampler.stop() });
      }
      progress('sealdrop: sending the delivery with .ready');
      await sftpBatch(work, sdSender, AES.name, [`put ${quote(empty)} ${quote(`${OUTBOX}/.ready`)}`]);
      for (let i = 0; i < 50 && !inboxFile; i++) {
        const { stdout } = await sftpBatch(work, sdReceiver, AES.name, ['ls -1 /inbox']);
        const folder = stdout
          .split('\n')
          .filter((l) => !l.startsWith('sftp>'))
          .map((l) => l.trim().replace(/^\/inbox\//, ''))
          .find((l) => l.includes(`Files from ${SENDER}`));
        if (folder) inboxFile = `/inbox/${folder}/dl-source.bin.pgp`;
        else await sleep(200);
      }
      if (!inboxFile) throw new Error('the delivery did not appear in the receiver\'s /inbox');
      progress(`sealdrop: receiver sees ${inboxFile}`);
    });

    /**
     * Removes timed uploads from sealdrop's open delivery (their blobs are deleted), as OpenSSH's
     * files are after each run: a blob kept would make every later write grow the page cache into
     * memory never touched before, which costs several CPU-s per GB on this VM (daemon/bench/README.md).
     */
    const dropUploads = async (paths: string[]) => {
      await sftpBatch(work, sdSender, AES.name, paths.map((p) => `rm ${quote(p)}`));
    };

    // -------------------------------------------------------------- single uploads
    const uploadMeasure = (c: (typeof CIPHERS)[number]) => `upload ${c.short}`;
    for (let run = 1; run <= opt.runs; run++) {
      for (const c of CIPHERS) {
        const tag = `${uploadMeasure(c)} run ${run}/${opt.runs}`;
        await attempt(`${tag} OpenSSH`, async () => {
          await ensureSpace(size * 2);
          await settle();
          const target = path.join(osshDir, `up-${c.short}-${run}.bin`);
          const t = await timed(() => sftpBatch(work, osshT, c.name, [`put ${quote(input)} ${quote(target)}`], limitFor(size)), osshPid);
          const written = (await stat(target)).size;
          await rm(target, { force: true });
          if (written !== size) throw new Error(`the uploaded file has ${written} bytes, expected ${size}`);
          const s = sampleOf(t, size);
          results.add(uploadMeasure(c), 'openssh', s);
          progress(`${tag} OpenSSH: ${mbpsText(s)}`);
        });
        await attempt(`${tag} sealdrop`, async () => {
          daemonAlive();
          await ensureSpace(size * 2);
          await settle();
          const sampler = new RssSampler(sdPid).start();
          let t;
          try {
            t = await timed(() => sftpBatch(work, sdSender, c.name, [`put ${quote(input)} ${quote(`${OUTBOX}/up-${c.short}-${run}.bin`)}`], limitFor(size)), sdPid);
          } finally {
            rss.push({ label: `${tag}`, ...sampler.stop() });
          }
          const s = sampleOf(t, size);
          results.add(uploadMeasure(c), 'sealdrop', s);
          const m = rss[rss.length - 1] as RssRecord;
          progress(`${tag} sealdrop: ${mbpsText(s)}; daemon RSS ${fmtMB(m.before)} → peak ${fmtMB(m.peak)} MB`);
          // Removed like OpenSSH's copy (untimed): see dropUploads.
          await dropUploads([`${OUTBOX}/up-${c.short}-${run}.bin`]);
        });
      }
    }

    // -------------------------------------------------------------- single downloads
    const downloadMeasure = (c: (typeof CIPHERS)[number]) => `download ${c.short}`;
    for (let run = 1; run <= opt.runs; run++) {
      for (const c of CIPHERS) {
        const tag = `${downloadMeasure(c)} run ${run}/${opt.runs}`;
        await attempt(`${tag} OpenSSH`, async () => {
          await ensureSpace(size * 2);
          await settle();
          const local = path.join(dlDir, `openssh-${c.short}-${run}.bin`);
          const t = await timed(() => sftpBatch(work, osshT, c.name, [`get ${quote(osshSource)} ${quote(local)}`], limitFor(size)), osshPid);
          const bytes = (await stat(local)).size;
          await rm(local, { force: true });
          if (bytes !== size) throw new Error(`the downloaded file has ${bytes} bytes, expected ${size}`);
          const s = sampleOf(t, bytes);
          results.add(downloadMeasure(c), 'openssh', s);
          progress(`${tag} OpenSSH: ${mbpsText(s)}`);
        });
        await attempt(`${tag} sealdrop`, async () => {
          daemonAlive();
          if (!inboxFile) throw new Error('no download source (its setup failed)');
          await ensureSpace(size * 2);
          await settle();
          const local = path.join(dlDir, `sealdrop-${c.short}-${run}.bin.pgp`);
          const t = await timed(() => sftpBatch(work, sdReceiver, c.name, [`get ${quote(inboxFile as string)} ${quote(local)}`], limitFor(size)), sdPid);
          const bytes = (await stat(local)).size;
          await rm(local, { force: true });
          if (bytes <= size) throw new Error(`the downloaded .pgp file has ${bytes} bytes, expected more than the ${size} bytes of plaintext`);
          const s = sampleOf(t, bytes);
          results.add(downloadMeasure(c), 'sealdrop', s);
          progress(`${tag} sealdrop: ${mbpsText(s)} (${bytes} bytes of OpenPGP)`);
        });
      }
    }

    // -------------------------------------------------------------- parallel uploads
    const parMeasure = 'parallel';
    const parallel = async (server: Server, target: SftpTarget, remote: (i: number) => string) => {
      // The wall time ends when the last client does (timed() then waits for sshd to reap).
      const t = await timed(async () => {
        const started = process.hrtime.bigint();
        const runs = await Promise.allSettled(Array.from({ length: PAR_COUNT }, (_, i) => sftpBatch(work, target, AES.name, [`put ${quote(parInput)} ${quote(remote(i))}`], limitFor(PAR_COUNT * parSize))));
        return { runs, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
      }, server === 'openssh' ? osshPid : sdPid);
      const failed = t.value.runs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason as Error;
      const each = t.value.runs.map((r) => (r as PromiseFulfilledResult<{ seconds: number }>).value.seconds);
      const s = sampleOf(t, PAR_COUNT * parSize);
      results.add(parMeasure, server, s);
      return { s, each };
    };
    for (let run = 1; run <= opt.runs; run++) {
      const tag = `${PAR_COUNT}×${PAR_MIB} MiB parallel upload run ${run}/${opt.runs}`;
      await attempt(`${tag} OpenSSH`, async () => {
        await ensureSpace(PAR_COUNT * parSize * 2);
        await settle();
        const names = (i: number) => path.join(osshDir, `par-${run}-${i}.bin`);
        try {
          const { s, each } = await parallel('openssh', osshT, names);
          progress(`${tag} OpenSSH: ${mbpsText(s)} aggregate; per process ${each.map((x) => x.toFixed(2)).join(' ')} s`);
        } finally {
          for (let i = 0; i < PAR_COUNT; i++) await rm(names(i), { force: true });
        }
      });
      await attempt(`${tag} sealdrop`, async () => {
        daemonAlive();
        await ensureSpace(PAR_COUNT * parSize * 2);
        await settle();
        const sampler = new RssSampler(sdPid).start();
        try {
          const { s, each } = await parallel('sealdrop', sdSender, (i) => `${OUTBOX}/par-${run}-${i}.bin`);
          progress(`${tag} sealdrop: ${mbpsText(s)} aggregate; per process ${each.map((x) => x.toFixed(2)).join(' ')} s`);
        } finally {
          rss.push({ label: tag, ...sampler.stop() });
        }
        await dropUploads(Array.from({ length: PAR_COUNT }, (_, i) => `${OUTBOX}/par-${run}-${i}.bin`));
      });
    }
  }

  // -------------------------------------------------------------- WebDAV
  let webdavOutcome: WebdavOutcome | undefined;
  if (webdav) {
    webdavOutcome = await runWebdav({
      work,
      input,
      size,
      runs: opt.runs,
      sd,
      results,
      rss: webdavRss,
      addServer: (srv) => servers.push(srv),
      attempt,
      timed,
      prepare: async (need) => {
        await ensureSpace(need);
        await settle();
      },
      daemonAlive,
      limitFor,
    });
  }

  // -------------------------------------------------------------- the report
  const daemonLog = readFileSync(sd.stdoutFile, 'utf8');
  const daemonErrors = errorSummary(daemonLog);
  const daemonWarnings = errorSummary(daemonLog, true);
  const daemonStderr = tail(sd.stderrFile, 40);
  const daemonExited = sd.child.exitCode !== null || sd.child.signalCode !== null;
  report(opt, header, results, rss, webdavRss, webdavOutcome, floor, { daemonErrors, daemonWarnings, daemonStderr, daemonExited });
  return results.errors.length || daemonExited ? 1 : 0;
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  try {
    return readFileSync(file).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

/** Error and fatal lines (or, with `warnings`, only the warn lines) of the daemon's JSON log, grouped by message. */
function errorSummary(log: string, warnings = false): Array<{ key: string; count: number; example: string }> {
  const groups = new Map<string, { key: string; count: number; example: string }>();
  for (const line of log.split('\n')) {
    if (!line.trim()) continue;
    let entry: { level?: unknown; msg?: unknown; err?: { message?: unknown } };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    const level = entry.level;
    const isError = level === 'error' || level === 'fatal' || (typeof level === 'number' && level >= 50);
    const isWarn = level === 'warn' || level === 40;
    if (warnings ? !isWarn : !isError) continue;
    const key = `${String(entry.msg)}${entry.err?.message ? `: ${String(entry.err.message)}` : ''}`;
    const g = groups.get(key) ?? { key, count: 0, example: line };
    g.count++;
    groups.set(key, g);
  }
  return [...groups.values()];
}

/** The SFTP measures in report order. */
function measureNames(): string[] {
  return [...CIPHERS.map((c) => `upload ${c.short}`), ...CIPHERS.map((c) => `download ${c.short}`), 'parallel'];
}

function measuresAll(results: Results): Sample[] {
  return measureNames().flatMap((m) => [...results.get(m, 'openssh'), ...results.get(m, 'sealdrop')]);
}

function report(
  opt: Options,
  header: string[],
  results: Results,
  rss: RssRecord[],
  webdavRss: RssRecord[],
  webdavOutcome: WebdavOutcome | undefined,
  floor: EncryptionFloor,
  daemon: DaemonLog,
): void {
  const sftp = opt.parts.has('sftp');
  const webdav = opt.parts.has('webdav');
  print(sftp && webdav ? `# sealdrop benchmark: SFTP vs OpenSSH, WebDAV vs nginx` : sftp ? `# sealdrop vs OpenSSH: SFTP benchmark` : `# sealdrop vs nginx: WebDAV benchmark`);
  print();
  for (const line of header) print(line);
  if (!sftp) print();
  if (sftp) reportSftp(opt, results, rss, floor, webdav);
  if (webdav) reportWebdav(opt, results, webdavRss, webdavOutcome, floor);
  reportProblems(results, daemon, webdavOutcome);
}

/**
 * What the cores allow: a transfer cannot be faster than the cores divided by all the CPU it
 * needs per GB (client and server). sealdrop's daemon needs at least the encryption floor; the
 * client's CPU is measured in the same runs. The bound ratio is that ceiling over OpenSSH's
 * measured speed: below the target, the target needs SSH, SFTP and disk work cheaper than
 * OpenSSH's own (for the "encryption only" column: no implementation can meet it here).
 */
function reportUploadBounds(results: Results, floor: EncryptionFloor): void {
  const enc = floor.total;
  const how = floor.native
    ? `AES-256-CFB and SHA-1 in one pass through the cfb-sha1 addon, as sealdrop does: ${enc.toFixed(2)} CPU-s/GB (the CFB alone ${floor.cfb.toFixed(2)}, Node's SHA-1 alone ${floor.sha1.toFixed(2)})`
    : `AES-256-CFB ${floor.cfb.toFixed(2)} (through CBC + XOR, as sealdrop does without its addon) + SHA-1 ${floor.sha1.toFixed(2)} = ${enc.toFixed(2)} CPU-s/GB with Node's OpenSSL`;
  print(`What ${CORES} cores allow for an upload: at most ${CORES} / (client + server CPU-s per GB) GB/s. sealdrop's daemon must at least encrypt every byte: ${how} here (measured in this run, 64 KiB units, best of 3). "Encryption only": a daemon that spent nothing else (no SSH, no disk); "+ OpenSSH's work": one that also spent exactly what OpenSSH's server did. Bound ratio = that ceiling / OpenSSH's median MB/s; below the target, the target needs SSH, SFTP and disk work cheaper than OpenSSH's own.`);
  print();
  print(`| measure | client CPU-s/GB (OpenSSH / sealdrop runs) | OpenSSH MB/s | bound: encryption only, MB/s (ratio) | bound: + OpenSSH's work (ratio) |`);
  print(`|---|---:|---:|---:|---:|`);
  for (const m of [...CIPHERS.map((c) => `upload ${c.short}`), 'parallel']) {
    const oClient = results.medianClientCpuPerGB(m, 'openssh');
    const sdClient = results.medianClientCpuPerGB(m, 'sealdrop');
    const oServer = results.medianCpuPerGB(m, 'openssh');
    const o = results.medianMbps(m, 'openssh');
    if (sdClient === undefined || oServer === undefined || o === undefined) continue;
    const cell = (cpu: number) => {
      const b = boundMbps(cpu);
      return `${b.toFixed(0)} (${(b / o).toFixed(2)})`;
    };
    const label = m === 'parallel' ? `${PAR_COUNT}×${PAR_MIB} MiB parallel upload (aes128-gcm)` : m;
    print(`| ${label} | ${fmtCpu(oClient)} / ${fmtCpu(sdClient)} | ${fmtMbps(o)} | ${cell(sdClient + enc)} | ${cell(sdClient + oServer + enc)} |`);
  }
  print();
}

function reportSftp(opt: Options, results: Results, rss: RssRecord[], floor: EncryptionFloor, heading: boolean): void {
  const sizeLabel = opt.sizeMiB % 1024 === 0 ? `${opt.sizeMiB / 1024} GiB` : `${opt.sizeMiB} MiB`;
  if (heading) {
    print();
    print(`## SFTP: sealdrop vs OpenSSH`);
    print();
  }
  print(`- client: /usr/bin/sftp in batch mode, key authentication (ed25519), both servers on 127.0.0.1`);
  print(`- single transfers: ${sizeLabel} of random data, median of ${opt.runs} run(s); parallel: ${PAR_COUNT} sftp processes × ${PAR_MIB} MiB, aes128-gcm, median of ${opt.runs} run(s)`);
  print(`- MB/s = bytes / 1e6 / seconds, timed around the whole sftp process (connect, key exchange, auth, transfer, exit); 1 MB = 1e6 bytes (RSS too)`);
  print(`- downloads from sealdrop fetch the OpenPGP file (.pgp, slightly larger than the input) and count its real size`);
  print(`- OpenSSH writes plaintext to disk; sealdrop encrypts at rest (level 3 delivery to the receiver)`);
  print();

  type Row = { measure: string; o?: number; s?: number; target?: number; fmt?: (v: number | undefined) => string };
  const rows: Row[] = [];
  for (const c of CIPHERS) rows.push({ measure: `upload ${c.short} MB/s`, o: results.medianMbps(`upload ${c.short}`, 'openssh'), s: results.medianMbps(`upload ${c.short}`, 'sealdrop'), target: 1.0 });
  for (const c of CIPHERS) rows.push({ measure: `download ${c.short} MB/s`, o: results.medianMbps(`download ${c.short}`, 'openssh'), s: results.medianMbps(`download ${c.short}`, 'sealdrop'), target: 0.95 });
  rows.push({ measure: `${PAR_COUNT}×${PAR_MIB} MiB parallel upload MB/s (aes128-gcm)`, o: results.medianMbps('parallel', 'openssh'), s: results.medianMbps('parallel', 'sealdrop') });

  print(`| measure | OpenSSH | sealdrop | ratio | target | met |`);
  print(`|---|---:|---:|---:|---|---|`);
  for (const r of rows) {
    const ratio = r.o !== undefined && r.s !== undefined ? r.s / r.o : undefined;
    const target = r.target === undefined ? '—' : `ratio ≥ ${r.target.toFixed(2)}`;
    const met = r.target === undefined || ratio === undefined ? '—' : ratio >= r.target ? 'yes' : 'NO';
    print(`| ${r.measure} | ${fmtMbps(r.o)} | ${fmtMbps(r.s)} | ${ratio === undefined ? 'n/a' : ratio.toFixed(3)} | ${target} | ${met} |`);
  }
  const timedAes = rss.filter((r) => r.label.startsWith(`upload ${AES.short} run`));
  if (timedAes.length) {
    const before = (timedAes[0] as RssRecord).before;
    const peak = Math.max(...timedAes.map((r) => r.peak));
    const met = peak <= RSS_TARGET_MB * 1e6 ? 'yes' : 'NO';
    print(`| daemon RSS before / peak during ${sizeLabel} upload (aes128-gcm) MB | — | ${fmtMB(before)} / ${fmtMB(peak)} | — | peak ≤ ${RSS_TARGET_MB} MB | ${met} |`);
  } else {
    print(`| daemon RSS before / peak during ${sizeLabel} upload (aes128-gcm) MB | — | n/a | — | peak ≤ ${RSS_TARGET_MB} MB | — |`);
  }
  print();
  print(`Server CPU per GB moved (median; it drifts with the machine too, so compare variants in alternating runs). OpenSSH: the sshd listener with its per-session sshd and sftp-server; sealdrop: the daemon with its worker threads; the sftp client is counted apart (below). Ratio above 1: sealdrop spends more CPU per byte.`);
  print();
  print(`| measure | OpenSSH CPU-s/GB | sealdrop CPU-s/GB | sealdrop / OpenSSH |`);
  print(`|---|---:|---:|---:|`);
  for (const m of measureNames()) {
    const o = results.medianCpuPerGB(m, 'openssh');
    const sd = results.medianCpuPerGB(m, 'sealdrop');
    const label = m === 'parallel' ? `${PAR_COUNT}×${PAR_MIB} MiB parallel upload (aes128-gcm)` : m;
    print(`| ${label} | ${fmtCpu(o)} | ${fmtCpu(sd)} | ${o !== undefined && sd !== undefined && o > 0 ? (sd / o).toFixed(2) : 'n/a'} |`);
  }
  print();
  reportUploadBounds(results, floor);
  printForeignLoad(measuresAll(results));
  print(`RSS row: "before" is VmRSS just before the first timed aes128-gcm upload; "peak" is the highest VmRSS sampled every 50 ms during any timed aes128-gcm upload (all runs listed below).`);
  if (opt.sizeMiB !== 1024) print(`Note: --size ${opt.sizeMiB}: the targets are defined for 1 GiB transfers.`);
  print();

  print(`## Individual runs`);
  print();
  print(`Each run: seconds (MB/s; other = average number of cores busy with processes outside this benchmark during the run, of ${os.availableParallelism()}; cpu = the server's CPU seconds per GB; client = the sftp client's, with its ssh).`);
  print();
  print(`| measure | server | runs |`);
  print(`|---|---|---|`);
  for (const m of measureNames()) {
    for (const server of ['openssh', 'sealdrop'] as const) {
      const list = results.get(m, server);
      const label = m === 'parallel' ? `${PAR_COUNT}×${PAR_MIB} MiB parallel upload (wall time)` : m;
      const cells = list.length ? list.map((s) => `${s.seconds.toFixed(2)} s (${mbps(s).toFixed(1)}; other ${(s.other ?? 0).toFixed(2)}; cpu ${fmtCpu(cpuPerGB(s))}; client ${fmtCpu(clientCpuPerGB(s))})`).join(', ') : 'none';
      print(`| ${label} | ${server === 'openssh' ? 'OpenSSH' : 'sealdrop'} | ${cells} |`);
    }
  }
  print();

  printRssTable(`## sealdrop daemon memory (VmRSS sampled every 50 ms; MB = 1e6 bytes)`, rss);
}

/** What the daemon left in its log and on stderr. */
interface DaemonLog {
  daemonErrors: Array<{ key: string; count: number; example: string }>;
  daemonWarnings: Array<{ key: string; count: number; example: string }>;
  daemonStderr: string;
  daemonExited: boolean;
}

function reportProblems(
  results: Results,
  daemon: DaemonLog,
  webdav: WebdavOutcome | undefined,
): void {
  if (results.errors.length || daemon.daemonErrors.length || daemon.daemonExited || webdav?.nginxErrors) {
    print(`## Problems`);
    print();
    for (const e of results.errors) print(`- ${e.replace(/\n/g, '\n  ')}`);
    if (daemon.daemonExited) print(`- the sealdrop daemon exited during the benchmark`);
    if (daemon.daemonErrors.length) {
      print(`- the daemon logged errors (level error/fatal), grouped by message, with one example line each:`);
      for (const e of daemon.daemonErrors) {
        print(`  - ${e.count}× ${e.key}`);
        print('    ```');
        print(`    ${e.example.slice(0, 1500)}`);
        print('    ```');
      }
    }
    if (daemon.daemonStderr) {
      print(`- daemon stderr (tail):`);
      print('```');
      print(daemon.daemonStderr);
      print('```');
    }
    if (webdav?.nginxErrors) {
      print(`- nginx error.log (level error and above, tail):`);
      print('```');
      print(webdav.nginxErrors);
      print('```');
    }
    print();
  }
  if (daemon.daemonWarnings.length) {
    print(`Daemon warnings (level warn, not counted as failures), grouped by message:`);
    print();
    for (const w of daemon.daemonWarnings) print(`- ${w.count}× ${w.key.slice(0, 300)}`);
    print();
  }
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (err) {
  if (err instanceof AbortedError) progress('interrupted');
  else progress(`benchmark failed: ${(err as Error).stack ?? String(err)}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
