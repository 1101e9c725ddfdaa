/**
 * The WebDAV part of `npm run bench`: one large PUT and GET with curl against sealdrop's /dav/
 * (encrypted at arrival, delivered, fetched as .pgp by the receiver) and against a private nginx
 * with its DAV modules (plaintext to disk), beside the cipher ceiling `openssl enc -aes-256-cfb`
 * over the same file; plus the daemon's RSS during each sealdrop PUT.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { checkAborted, print, progress, runTimed, sleep } from './proc.ts';
import { boundMbps, CORES, type EncryptionFloor } from './floor.ts';
import { clientCpuPerGB, cpuPerGB, fmtCpu, fmtMB, fmtMbps, mbps, printForeignLoad, printRssTable, sampleOf, type Results, type RssRecord, type Sample, type Timed } from './results.ts';
import { api, PASSWORD, RECEIVER, SENDER, startNginx, tail, type NginxServer, type RunningServer, type SealdropServer } from './servers.ts';
import { makeRandomFile, RssSampler } from './sftp.ts';

/** Measures (Results keys) and the servers they are recorded under. */
export const PUT = 'webdav put';
export const GET = 'webdav get';
export const CIPHER = 'cipher ceiling';
const PUT_CIPHER_TARGET = 0.9;
const GET_TARGET = 0.9;
/** "Flat" memory: no timed PUT's RSS rises more than this many MB (1e6 bytes) above its peak in its first quarter. */
export const RSS_FLAT_MB = 25;
const WARMUP_MiB = 16;
const MiB = 1024 * 1024;
/** Folder (subject) names under /outbox/<receiver>/; each becomes its own delivery. */
const SUBJECT = (tag: string) => `webdav-bench-${tag}`;

/** What the WebDAV part needs from the run. */
export interface WebdavContext {
  work: string;
  input: string;
  size: number;
  runs: number;
  sd: SealdropServer;
  results: Results;
  /** RSS records of the sealdrop PUTs (the warm-up first, then the timed runs). */
  rss: RssRecord[];
  /** Registers a server for the cleanup on exit. */
  addServer(s: RunningServer): void;
  /** Runs one step; a failure is recorded under `what` and the benchmark goes on. */
  attempt(what: string, fn: () => Promise<void>): Promise<void>;
  /** Runs a transfer, measuring how busy the machine was with other work meanwhile; given a server pid, also that server's CPU seconds. */
  timed<T>(fn: () => Promise<T>, server?: number): Promise<Timed<T>>;
  /** Checks the free space for `need` more bytes and flushes dirty pages. */
  prepare(need: number): Promise<void>;
  daemonAlive(): void;
  limitFor(bytes: number): number;
}

/** What the report shows beside the figures. */
export interface WebdavOutcome {
  nginxErrors: string;
  /** Deliveries sent to the receiver by this part. */
  deliveries: number;
}

// ------------------------------------------------------------------ commands

interface ProcessRun {
  seconds: number;
  stdout: string;
  stderr: string;
}

const PACKAGE: Record<string, string> = { curl: 'curl', openssl: 'openssl', nginx: 'nginx' };

/**
 * Runs a command to completion, timed around the whole process; stops it (SIGTERM by PID, then
 * SIGKILL) after `timeoutMs`, so a hung transfer fails with a message naming `label`.
 */
async function runLimited(label: string, cmd: string, args: string[], timeoutMs: number): Promise<ProcessRun> {
  const { seconds, stdout, stderr, code, signal, timedOut, spawnError } = await runTimed(cmd, args, timeoutMs);
  if (spawnError) {
    const pkg = PACKAGE[path.basename(cmd)];
    throw new Error(`${label}: could not run ${cmd}: ${spawnError.message}${pkg ? ` (Debian package ${pkg})` : ''}`);
  }
  if (timedOut) throw new Error(`${label}: hung, stopped after ${Math.round(timeoutMs / 1000)} s without finishing`);
  if (code !== 0) throw new Error(`${label}: ${path.basename(cmd)} failed (exit ${code ?? signal}): ${(stderr || stdout).trim().slice(-1500) || '(no output)'}`);
  return { seconds, stdout, stderr };
}

/** The write-out line curl prints after the body. */
const WRITE_OUT = '\\n%{http_code} %{size_upload} %{size_download}';

interface CurlResult {
  seconds: number;
  status: number;
  uploaded: number;
  downloaded: number;
  body: string;
}

/** One curl process (`-sS`, Basic auth); the body of the answer goes to stdout unless `args` redirect it. */
async function curl(label: string, url: string, user: string, args: string[], timeoutMs: number): Promise<CurlResult> {
  const r = await runLimited(label, 'curl', ['-sS', '-u', `${user}:${PASSWORD}`, '-w', WRITE_OUT, ...args, url], timeoutMs);
  const nl = r.stdout.lastIndexOf('\n');
  const [status, uploaded, downloaded] = r.stdout.slice(nl + 1).trim().split(' ').map(Number);
  return { seconds: r.seconds, status: status ?? 0, uploaded: uploaded ?? 0, downloaded: downloaded ?? 0, body: r.stdout.slice(0, Math.max(0, nl)).trim() };
}

function expectStatus(label: string, r: { status: number; body: string }, ok: number[]): void {
  if (!ok.includes(r.status)) throw new Error(`${label}: HTTP ${r.status}, expected ${ok.join(' or ')}${r.body ? `: ${r.body.slice(0, 500)}` : ''}`);
}

/** A path segment for a URL ('@' stays readable). */
const seg = (s: string) => encodeURIComponent(s).replace(/%40/g, '@');

/** A small WebDAV request with fetch (MKCOL, the trigger PUT, PROPFIND): not timed. */
async function dav(base: string, user: string, method: string, urlPath: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; body: string }> {
  checkAborted();
  const res = await fetch(`${base}${urlPath}`, {
    method,
    headers: { authorization: `Basic ${Buffer.from(`${user}:${PASSWORD}`).toString('base64')}`, ...headers },
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(60_000),
  }).catch((err: Error) => {
    throw new Error(`${method} ${urlPath} as ${user}: ${err.message}${err.cause ? ` (${String(err.cause)})` : ''}`);
  });
  return { status: res.status, body: await res.text() };
}

/** The responses of a multistatus: href (decoded) and getcontentlength. */
function multistatus(xml: string): Array<{ href: string; length?: number }> {
  const out: Array<{ href: string; length?: number }> = [];
  for (const part of xml.split(/<(?:[\w-]+:)?response[\s>]/).slice(1)) {
    const href = /<(?:[\w-]+:)?href>([^<]*)</.exec(part)?.[1];
    if (href === undefined) continue;
    const len = /<(?:[\w-]+:)?getcontentlength>(\d+)</.exec(part)?.[1];
    out.push({ href: decodeURIComponent(href), ...(len !== undefined ? { length: Number(len) } : {}) });
  }
  return out;
}

function versionOf(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return `${cmd}: ${r.error.message}`;
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

/** Report header lines: the tools of the WebDAV part. */
export function webdavVersions(): string[] {
  return [`- ${versionOf('curl', ['--version'])}; ${versionOf('/usr/sbin/nginx', ['-v'])}; ${versionOf('openssl', ['version'])}`];
}

// ------------------------------------------------------------------ the run

/** The WebDAV measurements: a warm-up, then per run openssl, nginx PUT, nginx GET, sealdrop PUT, sealdrop GET. */
export async function runWebdav(ctx: WebdavContext): Promise<WebdavOutcome> {
  const { work, input, size, runs, sd, results } = ctx;
  const sdPid = sd.child.pid as number;
  const sdBase = `http://127.0.0.1:${sd.httpPort}`;
  const outbox = (subject: string) => `/dav/outbox/${seg(RECEIVER)}/${seg(subject)}`;
  let deliveries = 0;

  let ng: NginxServer | undefined;
  await ctx.attempt('WebDAV: starting nginx', async () => {
    progress('WebDAV: starting nginx');
    ng = await startNginx(path.join(work, 'nginx'), SENDER, PASSWORD);
    ctx.addServer(ng);
    progress(`WebDAV: nginx on port ${ng.port} (pid ${ng.child.pid}); sealdrop WebDAV at ${sdBase}/dav/`);
  });
  const nginxFailure = (err: Error) => {
    const log = ng ? tail(ng.errorLog, 10) : '';
    if (log) err.message += `\n  nginx error.log (tail):\n    ${log.split('\n').join('\n    ')}`;
    return err;
  };

  let senderToken: string | undefined;
  /** Revokes the sender's delivery with this subject (its blobs are deleted). */
  const revokeRun = async (subject: string): Promise<void> => {
    senderToken ??= (await api<{ token: string }>(ctx.sd.httpPort, 'POST', '/api/v1/session', { email: SENDER, password: PASSWORD })).token;
    const { deliveries: list } = await api<{ deliveries: Array<{ id: string; subject: string; state: string }> }>(ctx.sd.httpPort, 'GET', '/api/v1/deliveries?box=outbox', undefined, senderToken);
    const d = list.find((x) => x.subject === subject && x.state !== 'revoked');
    if (!d) throw new Error(`no delivery "${subject}" in the sender's outbox to revoke`);
    await api(ctx.sd.httpPort, 'POST', `/api/v1/deliveries/${d.id}/revoke`, {}, senderToken);
  };

  /**
   * Makes a subject folder, PUTs `file` into it (timed when `sample` says so, RSS sampled), sends
   * it with `.ready` and waits until the receiver's /dav/inbox/ lists it. Returns the inbox URL path
   * of the .pgp and its size.
   */
  const sealdropPut = async (tag: string, file: string, bytes: number, rssLabel: string, measure?: string): Promise<{ url: string; length: number; sample: Sample }> => {
    const subject = SUBJECT(tag);
    const name = `${tag}.bin`;
    const mk = await dav(sdBase, SENDER, 'MKCOL', outbox(subject));
    expectStatus(`MKCOL ${outbox(subject)}`, mk, [201]);
    const sampler = new RssSampler(sdPid).start();
    let t: Timed<CurlResult>;
    try {
      t = await ctx.timed(() => curl(`curl PUT ${name} to sealdrop`, `${sdBase}${outbox(subject)}/${seg(name)}`, SENDER, ['-T', file], ctx.limitFor(bytes)), sdPid);
    } finally {
      ctx.rss.push({ label: rssLabel, ...sampler.stop() });
    }
    expectStatus(`curl PUT ${name} to sealdrop`, t.value, [201, 204]);
    if (t.value.uploaded !== bytes) throw new Error(`curl PUT ${name} to sealdrop: curl sent ${t.value.uploaded} bytes, expected ${bytes}`);
    const sample = sampleOf(t, bytes);
    if (measure) results.add(measure, 'sealdrop', sample);
    const m = ctx.rss[ctx.rss.length - 1] as RssRecord;
    progress(`${rssLabel}: ${t.value.seconds.toFixed(2)} s, ${mbps(sample).toFixed(1)} MB/s (other processes: ${t.other.toFixed(2)} cores); daemon RSS ${fmtMB(m.before)} → peak ${fmtMB(m.peak)} MB`);

    const ready = await dav(sdBase, SENDER, 'PUT', `${outbox(subject)}/.ready`, { 'content-type': 'application/octet-stream' }, '');
    expectStatus(`PUT ${outbox(subject)}/.ready (send)`, ready, [201, 204]);
    deliveries++;
    const folderRe = new RegExp(`^/dav/inbox/\\d{4}-\\d{2}-\\d{2} ${subject} \\[[^\\]]+\\]/$`);
    let folder: string | undefined;
    for (let i = 0; i < 100 && !folder; i++) {
      const list = await dav(sdBase, RECEIVER, 'PROPFIND', '/dav/inbox/', { depth: '1' });
      expectStatus('PROPFIND /dav/inbox/ as the receiver', list, [207]);
      folder = multistatus(list.body).find((r) => folderRe.test(r.href))?.href;
      if (!folder) await sleep(200);
    }
    if (!folder) throw new Error(`the delivery "${subject}" did not appear in the receiver's /dav/inbox/ within 20 s after .ready`);
    const inFolder = await dav(sdBase, RECEIVER, 'PROPFIND', folder.split('/').map(seg).join('/'), { depth: '1' });
    expectStatus(`PROPFIND ${folder}`, inFolder, [207]);
    const entry = multistatus(inFolder.body).find((r) => r.href === `${folder}${name}.pgp`);
    if (!entry || entry.length === undefined) throw new Error(`${folder} does not list ${name}.pgp: ${multistatus(inFolder.body).map((r) => r.href).join(', ')}`);
    if (entry.length <= bytes) throw new Error(`${folder}${name}.pgp has ${entry.length} bytes, expected more than the ${bytes} bytes of plaintext`);
    progress(`WebDAV: the receiver sees ${entry.href} (${entry.length} bytes)`);
    return { url: entry.href.split('/').map(seg).join('/'), length: entry.length, sample };
  };

  const sealdropGet = async (label: string, url: string, length: number, measure?: string) => {
    const t = await ctx.timed(() => curl(label, `${sdBase}${url}`, RECEIVER, ['-o', '/dev/null'], ctx.limitFor(length)), sdPid);
    expectStatus(label, t.value, [200]);
    if (t.value.downloaded !== length) throw new Error(`${label}: received ${t.value.downloaded} bytes, expected ${length}`);
    const s = sampleOf(t, length);
    if (measure) results.add(measure, 'sealdrop', s);
    return s;
  };

  // ------------------------------------------------------------ warm-up (untimed)
  // The daemon's first upload starts its encryption workers; a small delivery, sent and fetched,
  // also checks the whole path before the long transfers.
  await ctx.attempt('WebDAV warm-up (small PUT, send, GET) sealdrop', async () => {
    ctx.daemonAlive();
    const warm = path.join(work, `input-warmup-${WARMUP_MiB}MiB.bin`);
    await makeRandomFile(warm, WARMUP_MiB * MiB);
    progress(`WebDAV: sealdrop warm-up, ${WARMUP_MiB} MiB PUT, send and GET (untimed)`);
    const d = await sealdropPut('warmup', warm, WARMUP_MiB * MiB, `warm-up: ${WARMUP_MiB} MiB PUT (untimed)`);
    await sealdropGet('curl GET warm-up .pgp from sealdrop', d.url, d.length);
    await rm(warm, { force: true });
  });

  const mbpsText = (s: Sample) => `${s.seconds.toFixed(2)} s, ${mbps(s).toFixed(1)} MB/s (other processes: ${(s.other ?? 0).toFixed(2)} cores)`;
  for (let run = 1; run <= runs; run++) {
    const tag = `run ${run}/${runs}`;

    await ctx.attempt(`WebDAV ${tag}: cipher ceiling (openssl enc -aes-256-cfb)`, async () => {
      await ctx.prepare(size * 2);
      const out = path.join(work, `openssl-${run}.bin`);
      try {
        const key = randomBytes(32).toString('hex');
        const iv = randomBytes(16).toString('hex');
        const t = await ctx.timed(() => runLimited('openssl enc', 'openssl', ['enc', '-aes-256-cfb', '-K', key, '-iv', iv, '-in', input, '-out', out], ctx.limitFor(size)));
        const written = (await stat(out)).size;
        if (written !== size) throw new Error(`openssl wrote ${written} bytes, expected ${size}`);
        const s = sampleOf(t, size);
        results.add(CIPHER, 'openssl', s);
        progress(`WebDAV ${tag} openssl enc: ${mbpsText(s)}`);
      } finally {
        await rm(out, { force: true });
      }
    });

    const ngName = `up-${run}.bin`;
    let ngStored = false;
    await ctx.attempt(`WebDAV ${tag}: PUT nginx`, async () => {
      if (!ng) throw new Error('nginx did not start (see above)');
      const n = ng;
      await ctx.prepare(size * 2);
      try {
        const t = await ctx.timed(() => curl(`curl PUT ${ngName} to nginx`, `http://127.0.0.1:${n.port}/${ngName}`, SENDER, ['-T', input], ctx.limitFor(size)), n.child.pid);
        expectStatus(`curl PUT ${ngName} to nginx`, t.value, [201, 204]);
        const written = (await stat(path.join(n.root, ngName))).size;
        if (written !== size) throw new Error(`nginx stored ${written} bytes, expected ${size}`);
        ngStored = true;
        const s = sampleOf(t, size);
        results.add(PUT, 'nginx', s);
        progress(`WebDAV ${tag} PUT nginx: ${mbpsText(s)}`);
      } catch (err) {
        throw nginxFailure(err as Error);
      }
    });

    await ctx.attempt(`WebDAV ${tag}: GET nginx`, async () => {
      if (!ng || !ngStored) throw new Error('no file to fetch (the PUT to nginx failed)');
      const n = ng;
      await ctx.prepare(size);
      try {
        const t = await ctx.timed(() => curl(`curl GET ${ngName} from nginx`, `http://127.0.0.1:${n.port}/${ngName}`, SENDER, ['-o', '/dev/null'], ctx.limitFor(size)), n.child.pid);
        expectStatus(`curl GET ${ngName} from nginx`, t.value, [200]);
        if (t.value.downloaded !== size) throw new Error(`curl GET ${ngName} from nginx: received ${t.value.downloaded} bytes, expected ${size}`);
        const s = sampleOf(t, size);
        results.add(GET, 'nginx', s);
        progress(`WebDAV ${tag} GET nginx: ${mbpsText(s)}`);
      } catch (err) {
        throw nginxFailure(err as Error);
      } finally {
        await rm(path.join(n.root, ngName), { force: true });
      }
    });

    // nginx's file is gone now: sealdrop's PUT writes into the page cache it freed, as nginx's PUT
    // did with openssl's (daemon/bench/README.md: this VM's cost of growing the page cache).
    let delivered: { url: string; length: number } | undefined;
    await ctx.attempt(`WebDAV ${tag}: PUT sealdrop (and send)`, async () => {
      ctx.daemonAlive();
      await ctx.prepare(size * 2);
      delivered = await sealdropPut(`run-${run}`, input, size, `WebDAV PUT ${tag}`, PUT);
    });

    await ctx.attempt(`WebDAV ${tag}: GET sealdrop`, async () => {
      ctx.daemonAlive();
      if (!delivered) throw new Error('no delivery to fetch (the PUT to sealdrop or its send failed)');
      await ctx.prepare(size);
      const s = await sealdropGet(`curl GET ${delivered.url} from sealdrop`, delivered.url, delivered.length, GET);
      progress(`WebDAV ${tag} GET sealdrop: ${mbpsText(s)} (${delivered.length} bytes of OpenPGP)`);
    });
    // The references' files are deleted after each run; so is this run's blob (the delivery is
    // revoked), or every later write would grow the page cache into memory never touched
    // before, which costs several CPU-s per GB on this VM (daemon/bench/README.md).
    if (delivered) {
      await ctx.attempt(`WebDAV ${tag}: revoke the delivery (untimed)`, async () => {
        await revokeRun(SUBJECT(`run-${run}`));
      });
    }
  }

  const errLog = ng ? tail(ng.errorLog, 20) : '';
  return { nginxErrors: errLog, deliveries };
}

// ------------------------------------------------------------------ the report

/** The timed samples of this part (for the note on foreign load). */
function webdavSamples(results: Results): Sample[] {
  return [...results.get(PUT, 'sealdrop'), ...results.get(PUT, 'nginx'), ...results.get(CIPHER, 'openssl'), ...results.get(GET, 'sealdrop'), ...results.get(GET, 'nginx')];
}

/** The report's WebDAV section. */
export function reportWebdav(opt: { sizeMiB: number; runs: number }, results: Results, rss: RssRecord[], outcome: WebdavOutcome | undefined, floor: EncryptionFloor): void {
  const sizeLabel = opt.sizeMiB % 1024 === 0 ? `${opt.sizeMiB / 1024} GiB` : `${opt.sizeMiB} MiB`;
  print(`## WebDAV: sealdrop vs nginx and the cipher ceiling`);
  print();
  print(`- client: curl, one process per transfer, HTTP/1.1 with Basic auth (\`curl -sS -T file -u user:pass URL\`; GET with \`-o /dev/null\`), both servers on 127.0.0.1`);
  print(`- ${sizeLabel} of random data, median of ${opt.runs} run(s); MB/s = bytes / 1e6 / seconds of the whole curl (or openssl) process, connection and authentication included`);
  print(`- sealdrop PUT: into a subject folder under /dav/outbox/<receiver>/, encrypted as it arrives (level 3: OpenPGP SEIPDv1, AES-256-CFB + SHA-1 MDC, a session key per file) and fsynced to the blob store before the answer; each run's folder is then sent with a \`.ready\` PUT (untimed)`);
  print(`- sealdrop GET: the receiver fetches the delivered .pgp from /dav/inbox/ (the stored ciphertext with the PKESK in front), counted at its real size`);
  print(`- nginx: private instance, \`dav_methods PUT DELETE MKCOL COPY MOVE\` + dav_ext (libnginx-mod-http-dav-ext), Basic auth (sha512-crypt), \`sendfile on\`, 1 worker; PUT writes plaintext (the body goes to client_body_temp_path, then is renamed), no fsync; GET reads it back`);
  print(`- cipher ceiling: \`openssl enc -aes-256-cfb -K … -iv … -in file -out file\` in the work folder: encrypt + write to disk only; sealdrop also computes the SHA-1 MDC (with the cfb-sha1 addon in the same pass as the CFB, in the encryption worker; without it in the main thread, as each piece moves to the worker) and fsyncs the blob`);
  print(`- each run: openssl, nginx PUT, sealdrop PUT (+ send), nginx GET, sealdrop GET, with \`sync\` before each; an untimed ${WARMUP_MiB} MiB sealdrop PUT + send + GET comes first (it starts the daemon's encryption workers); deliveries sent: ${outcome?.deliveries ?? 0}`);
  print();

  const sdPut = results.medianMbps(PUT, 'sealdrop');
  const ngPut = results.medianMbps(PUT, 'nginx');
  const ssl = results.medianMbps(CIPHER, 'openssl');
  const sdGet = results.medianMbps(GET, 'sealdrop');
  const ngGet = results.medianMbps(GET, 'nginx');
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? a / b : undefined);
  const met = (r: number | undefined, target: number) => (r === undefined ? '—' : r >= target ? 'yes' : 'NO');
  const fmtRatio = (r: number | undefined) => (r === undefined ? 'n/a' : r.toFixed(3));

  print(`| measure | reference | reference MB/s | sealdrop MB/s | ratio | target | met |`);
  print(`|---|---|---:|---:|---:|---|---|`);
  const putCipher = ratio(sdPut, ssl);
  print(`| PUT ${sizeLabel} vs cipher ceiling | openssl enc -aes-256-cfb | ${fmtMbps(ssl)} | ${fmtMbps(sdPut)} | ${fmtRatio(putCipher)} | ratio ≥ ${PUT_CIPHER_TARGET.toFixed(2)} | ${met(putCipher, PUT_CIPHER_TARGET)} |`);
  print(`| PUT ${sizeLabel} vs nginx | nginx PUT | ${fmtMbps(ngPut)} | ${fmtMbps(sdPut)} | ${fmtRatio(ratio(sdPut, ngPut))} | (reported) | — |`);
  const getRatio = ratio(sdGet, ngGet);
  print(`| GET ${sizeLabel} vs nginx | nginx GET | ${fmtMbps(ngGet)} | ${fmtMbps(sdGet)} | ${fmtRatio(getRatio)} | ratio ≥ ${GET_TARGET.toFixed(2)} | ${met(getRatio, GET_TARGET)} |`);
  const timedRss = rss.filter((r) => r.label.startsWith('WebDAV PUT run'));
  if (timedRss.length) {
    const idle = (timedRss[0] as RssRecord).before;
    const peak = Math.max(...timedRss.map((r) => r.peak));
    const growth = Math.max(...timedRss.map((r) => r.peak - r.earlyPeak));
    const flat = growth <= RSS_FLAT_MB * 1e6;
    print(`| daemon RSS idle / peak during PUT (MB) | — | — | ${fmtMB(idle)} / ${fmtMB(peak)} | +${fmtMB(growth)} MB after the first quarter | flat: ≤ +${RSS_FLAT_MB} MB after the first quarter | ${flat ? 'yes (flat)' : 'NO (grows)'} |`);
  } else {
    print(`| daemon RSS idle / peak during PUT (MB) | — | — | n/a | — | flat: ≤ +${RSS_FLAT_MB} MB after the first quarter | — |`);
  }
  print();
  print(`Ratios are sealdrop MB/s / reference MB/s. RSS row: "idle" is the daemon's VmRSS just before the first timed PUT (after the warm-up; the daemon gives freed malloc memory back every few seconds, so idle is low and every PUT builds its working set of buffers again); "peak" is the highest VmRSS sampled every 50 ms during any timed PUT; memory is called flat when no PUT's RSS rises more than ${RSS_FLAT_MB} MB (1 MB = 1e6 bytes) above its peak in the first quarter of its samples — it does not grow with the bytes sent.`);
  if (opt.sizeMiB !== 1024) print(`Note: --size ${opt.sizeMiB}: the targets are defined for 1 GiB transfers.`);
  print();
  print(`Server CPU per GB moved (median): nginx (master and worker) ${fmtCpu(results.medianCpuPerGB(PUT, 'nginx'))} on PUT, ${fmtCpu(results.medianCpuPerGB(GET, 'nginx'))} on GET; sealdrop (the daemon with its worker threads) ${fmtCpu(results.medianCpuPerGB(PUT, 'sealdrop'))} on PUT, ${fmtCpu(results.medianCpuPerGB(GET, 'sealdrop'))} on GET (CPU-s/GB; curl is not counted).`);
  print();
  const curlPut = results.medianClientCpuPerGB(PUT, 'sealdrop');
  const sslCpu = results.medianClientCpuPerGB(CIPHER, 'openssl');
  const ngPutCpu = results.medianCpuPerGB(PUT, 'nginx');
  if (curlPut !== undefined && ssl !== undefined) {
    // One stream's CFB runs in one thread (with the SHA-1 where the addon fuses them); the rest,
    // the HTTP and disk work and curl may use the other cores.
    const enc = floor.total;
    const serial = floor.native ? floor.total : floor.cfb;
    const only = boundMbps(curlPut + enc, serial);
    const how = floor.native
      ? `AES-256-CFB and SHA-1 ${enc.toFixed(2)} in one thread, one pass through the cfb-sha1 addon as sealdrop does`
      : `AES-256-CFB ${floor.cfb.toFixed(2)} in one thread, through CBC + XOR as sealdrop does without its addon, SHA-1 ${floor.sha1.toFixed(2)}; Node's OpenSSL`;
    print(`What ${CORES} cores allow for the PUT: curl ${fmtCpu(curlPut)} CPU-s/GB (median of the sealdrop PUTs) + the encryption floor (${how}; measured in this run) bound a daemon that did nothing else (no HTTP, no disk) to ${only.toFixed(0)} MB/s = ${(only / ssl).toFixed(2)} of openssl enc's median (which used ${fmtCpu(sslCpu)} CPU-s/GB in one process, system OpenSSL).`);
    if (ngPutCpu !== undefined) {
      const withNginx = boundMbps(curlPut + enc + ngPutCpu, serial);
      print(`One that also spent exactly nginx's CPU for its HTTP and disk work (${fmtCpu(ngPutCpu)} CPU-s/GB, nginx's median PUT): ${withNginx.toFixed(0)} MB/s = ${(withNginx / ssl).toFixed(2)}. Below ${PUT_CIPHER_TARGET.toFixed(2)}, the target needs HTTP and disk work cheaper than nginx's.`);
    }
    print();
  }
  printForeignLoad(webdavSamples(results));

  print(`### WebDAV individual runs`);
  print();
  print(`Each run: seconds (MB/s; other = average number of cores busy with processes outside this benchmark during the run, of ${os.availableParallelism()}; cpu = the server's CPU seconds per GB, where measured; client = curl's or openssl's).`);
  print();
  print(`| measure | runs |`);
  print(`|---|---|`);
  const rows: Array<[string, string, string]> = [
    ['PUT sealdrop', PUT, 'sealdrop'],
    ['PUT nginx', PUT, 'nginx'],
    ['openssl enc -aes-256-cfb', CIPHER, 'openssl'],
    ['GET sealdrop (.pgp)', GET, 'sealdrop'],
    ['GET nginx', GET, 'nginx'],
  ];
  for (const [label, measure, server] of rows) {
    const list = results.get(measure, server);
    const cells = list.length ? list.map((s) => `${s.seconds.toFixed(2)} s (${mbps(s).toFixed(1)}; other ${(s.other ?? 0).toFixed(2)}${s.serverCpu === undefined ? '' : `; cpu ${fmtCpu(cpuPerGB(s))}`}${s.clientCpu === undefined ? '' : `; client ${fmtCpu(clientCpuPerGB(s))}`})`).join(', ') : 'none';
    print(`| ${label} | ${cells} |`);
  }
  print();

  printRssTable(`### sealdrop daemon memory during WebDAV PUTs (VmRSS sampled every 50 ms; MB = 1e6 bytes)`, rss);
}
