/**
 * Client commands of `sealdrop`, end to end on the client: `send` encrypts on this machine
 * before upload, `release` re-wraps session keys here, `fetch` decrypts here and writes a file
 * under its name only after the integrity check, `key export` makes a GnuPG-importable copy.
 * The daemon sees ciphertext, public keys and wraps only (levels 3 and 4).
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import * as openpgp from 'openpgp';
import type { DeliveryView } from '../core/deliveries.ts';
import { unlockPrivateKey, unwrapSessionKey, wrapSessionKey } from '../crypto/keys.ts';
import { createSeipdV1Encryptor } from '../crypto/seipd-v1.ts';
import { ApiClient, bodyOf, ClientError, formatBytes, networkError, Progress, readSecupass, type ClientOptions } from './api-client.ts';
import { EXIT } from './exit.ts';

/** What a client command gets. */
export interface ClientRun {
  options: ClientOptions;
  json: boolean;
  quiet: boolean;
  secupassFile?: string | undefined;
}

interface EncryptionKey {
  email: string;
  role: 'owner' | 'recipient';
  fingerprint: string;
  publicKey: string;
}

/** Reports for humans on stderr (not with --quiet); JSON goes to stdout. */
function say(run: ClientRun, line: string): void {
  if (!run.quiet) process.stderr.write(`${line}\n`);
}

function warn(line: string): void {
  process.stderr.write(`${line}\n`);
}

function client(run: ClientRun): ApiClient {
  return ApiClient.fromOptions(run.options, warn);
}

function showProgress(run: ClientRun): boolean {
  return !run.quiet && !run.json && Boolean(process.stderr.isTTY);
}

/** Counts bytes into a progress display as they pass. */
function progressTap(p: Progress): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      p.add(chunk.length);
      cb(null, chunk);
    },
  });
}

// ------------------------------------------------------------------------------------ send

/** Input of send. */
export interface SendInput {
  files: string[];
  to: string[];
  level: number;
  subject: string | undefined;
  messageFile: string | undefined;
  expiresInDays: number | undefined;
}

/** `sealdrop send`: creates a delivery, encrypts each file here (levels 3/4), uploads, sends. */
export async function send(run: ClientRun, input: SendInput): Promise<number> {
  const files = input.files.map((f) => {
    let st;
    try {
      st = statSync(f);
    } catch {
      throw new ClientError('SEALDROP_E_NOT_FOUND', `no such file: ${f}`, EXIT.notFound);
    }
    if (!st.isFile()) throw new ClientError('USAGE', `not a regular file: ${f}`, EXIT.usage);
    return { file: f, name: path.basename(f), size: st.size };
  });
  const names = new Set<string>();
  for (const f of files) {
    if (names.has(f.name)) throw new ClientError('USAGE', `two files are named ${f.name}; a delivery holds each name once`, EXIT.usage);
    names.add(f.name);
  }
  let message: string | undefined;
  if (input.messageFile) {
    try {
      message = readFileSync(input.messageFile, 'utf8');
    } catch (err) {
      throw new ClientError('USAGE', `cannot read --message-file ${input.messageFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT.usage);
    }
  }
  const api = client(run);
  const subject = input.subject ?? (files.length === 1 ? files[0]?.name : `${files[0]?.name} and ${files.length - 1} more`) ?? 'Files';
  const created = await api.json<{ delivery: DeliveryView }>('POST', '/deliveries', {
    to: input.to,
    subject,
    level: input.level,
    ...(input.expiresInDays !== undefined ? { expiresInDays: input.expiresInDays } : {}),
    ...(message !== undefined && input.level < 4 ? { message } : {}),
  });
  const id = created.delivery.id;
  try {
    let keys: EncryptionKey[] = [];
    if (input.level >= 3) {
      keys = (await api.json<{ keys: EncryptionKey[] }>('GET', `/deliveries/${id}/encryption-keys`)).keys;
      for (const k of keys) say(run, `encrypting to ${k.role} ${k.email} key ${k.fingerprint}`);
    }
    for (const f of files) {
      const p = new Progress(f.name, f.size, showProgress(run));
      const plain = createReadStream(f.file);
      if (input.level >= 3) {
        await api.request('PUT', `/deliveries/${id}/files/${encodeURIComponent(f.name)}`, {
          body: await encryptMessage(pipelineTap(plain, p), keys, f.name),
          headers: { 'content-type': 'application/pgp-encrypted', 'x-plaintext-size': String(f.size) },
        });
      } else {
        await api.request('PUT', `/deliveries/${id}/files/${encodeURIComponent(f.name)}`, {
          body: pipelineTap(plain, p),
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(f.size) },
        });
      }
      p.finish();
    }
    if (message !== undefined && input.level === 4) {
      const bytes = Buffer.from(message, 'utf8');
      await api.request('PUT', `/deliveries/${id}/message`, {
        body: await encryptMessage(Readable.from([bytes]), keys, 'message.txt'),
        headers: { 'content-type': 'application/pgp-encrypted', 'x-plaintext-size': String(bytes.length) },
      });
    }
    const sent = await api.json<{ delivery: DeliveryView }>('POST', `/deliveries/${id}/send`);
    if (run.json) console.log(JSON.stringify({ delivery: sent.delivery }));
    else {
      console.log(sent.delivery.id);
      for (const r of sent.delivery.recipients) say(run, `  ${r.email}: ${r.state}`);
    }
    return EXIT.ok;
  } catch (err) {
    // Nothing half-made stays behind: an unsent delivery is withdrawn.
    await api.json('POST', `/deliveries/${id}/revoke`).catch(() => undefined);
    throw err;
  }
}

function pipelineTap(src: Readable, p: Progress): Readable {
  const tap = progressTap(p);
  src.on('error', (err) => tap.destroy(err));
  return src.pipe(tap);
}

/**
 * One OpenPGP message for `keys`: a PKESK per key, then the SEIPDv1 packet (AES-256, MDC)
 * written by the native encoder, streaming.
 */
async function encryptMessage(plain: Readable, keys: EncryptionKey[], filename: string): Promise<Readable> {
  if (keys.length === 0) throw new ClientError('SEALDROP_E_WRONG_STATE', 'the server named no key to encrypt to', EXIT.wrongState);
  const sessionKey = randomBytes(32);
  const pkesks = await Promise.all(keys.map((k) => wrapSessionKey(sessionKey, k.publicKey)));
  const encryptor = createSeipdV1Encryptor({ sessionKey, filename });
  sessionKey.fill(0);
  plain.on('error', (err) => encryptor.destroy(err));
  const packets = plain.pipe(encryptor);
  async function* message(): AsyncGenerator<Uint8Array> {
    for (const p of pkesks) yield p;
    yield* packets;
  }
  return Readable.from(message(), { objectMode: false });
}

// --------------------------------------------------------------------------------- release

/** `sealdrop release ID... | --all-pending`: re-wraps each item to recipients' keys here. */
export async function release(run: ClientRun, ids: string[], options: { allPending: boolean; acceptChangedKeys: boolean }): Promise<number> {
  const api = client(run);
  let targets = ids;
  if (options.allPending) {
    const { deliveries } = await api.json<{ deliveries: DeliveryView[] }>('GET', '/deliveries?box=outbox&state=sent&limit=1000');
    targets = deliveries.filter((d) => d.role === 'owner' || d.owner === d.sender).filter((d) => d.recipients.some((r) => r.state === 'awaiting_release')).map((d) => d.id);
  }
  const results: Array<{ deliveryId: string; released: Array<{ email: string; fingerprint: string }>; skipped: Array<{ email: string; fingerprint: string; reason: string }> }> = [];
  if (targets.length === 0) {
    if (run.json) console.log(JSON.stringify({ releases: results }));
    else say(run, 'nothing awaits release');
    return EXIT.ok;
  }
  const { key } = await api.json<{ key: { privateKey: string; fingerprint: string } }>('GET', '/secupass/key');
  const privateKey = await unlockPrivateKey(key.privateKey, await readSecupass(run.secupassFile, warn));
  let changed = 0;
  for (const id of targets) {
    const m = await api.json<{
      items: Array<{ fileId: string; kind: string; name: string | null; ownerWrap: string | null }>;
      recipients: Array<{ recipientId: string; email: string; fingerprint: string; publicKey: string; keyChanged: boolean; lastReleasedFingerprint: string | null; registeredAt: string | null }>;
    }>('GET', `/deliveries/${encodeURIComponent(id)}/release-material`);
    const result = { deliveryId: id, released: [] as Array<{ email: string; fingerprint: string }>, skipped: [] as Array<{ email: string; fingerprint: string; reason: string }> };
    results.push(result);
    if (m.recipients.length === 0) {
      say(run, `${id}: nothing awaits release`);
      continue;
    }
    const sessionKeys = new Map<string, Uint8Array>();
    for (const item of m.items) {
      if (!item.ownerWrap) throw new ClientError('SEALDROP_E_UNRELEASABLE', `${id}: your key holds no wrap for ${item.name ?? item.kind}; it cannot be released`, EXIT.wrongState);
      sessionKeys.set(item.fileId, await unwrapSessionKey(Buffer.from(item.ownerWrap, 'base64'), privateKey));
    }
    const wraps = [];
    for (const r of m.recipients) {
      if (r.keyChanged && !options.acceptChangedKeys) {
        changed++;
        result.skipped.push({ email: r.email, fingerprint: r.fingerprint, reason: `key changed since your last release (was ${r.lastReleasedFingerprint})` });
        warn(`${id}: NOT released to ${r.email}: the key is ${r.fingerprint}, you last released to ${r.lastReleasedFingerprint}; check with the recipient, then rerun with --accept-changed-keys`);
        continue;
      }
      const items = [];
      for (const item of m.items) {
        const pkesk = await wrapSessionKey(sessionKeys.get(item.fileId) as Uint8Array, r.publicKey);
        items.push({ fileId: item.fileId, pkesk: Buffer.from(pkesk).toString('base64') });
      }
      wraps.push({ recipientId: r.recipientId, fingerprint: r.fingerprint, items });
      result.released.push({ email: r.email, fingerprint: r.fingerprint });
    }
    for (const k of sessionKeys.values()) k.fill(0);
    if (wraps.length > 0) {
      await api.json('POST', `/deliveries/${encodeURIComponent(id)}/wraps`, { wraps });
      for (const r of result.released) say(run, `${id}: released to ${r.email} (key ${r.fingerprint})`);
    }
  }
  if (run.json) console.log(JSON.stringify({ releases: results }));
  return changed > 0 ? EXIT.wrongState : EXIT.ok;
}

// ----------------------------------------------------------------------------------- fetch

/** `sealdrop fetch [ID...] --out DIR`: downloads and decrypts here; see the README for the layout. */
export async function fetchDeliveries(run: ClientRun, ids: string[], options: { out: string; all: boolean; overwrite: boolean }): Promise<number> {
  const api = client(run);
  let targets = ids;
  if (targets.length === 0) {
    const states = options.all ? ['available', 'downloaded'] : ['available'];
    targets = [];
    for (const state of states) {
      const { deliveries } = await api.json<{ deliveries: DeliveryView[] }>('GET', `/deliveries?box=inbox&state=${state}&limit=1000`);
      targets.push(...deliveries.map((d) => d.id));
    }
  }
  mkdirSync(options.out, { recursive: true, mode: 0o700 });
  let privateKey: openpgp.PrivateKey | undefined;
  const unlock = async () => {
    if (!privateKey) {
      const { key } = await api.json<{ key: { privateKey: string } }>('GET', '/secupass/key');
      privateKey = await unlockPrivateKey(key.privateKey, await readSecupass(run.secupassFile, warn));
    }
    return privateKey;
  };
  const report: Array<{ id: string; subject: string; dir: string; files: Array<{ name: string; path: string; size: number }> }> = [];
  for (const id of targets) {
    const { delivery: d } = await api.json<{ delivery: DeliveryView }>('GET', `/deliveries/${encodeURIComponent(id)}`);
    const dir = path.join(options.out, safeSegment(d.id));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const entry = { id: d.id, subject: d.subject, dir, files: [] as Array<{ name: string; path: string; size: number }> };
    report.push(entry);
    const jobs: Array<{ name: string; urlPath: string; size: number | undefined }> = d.files.map((f) => ({ name: f.name, urlPath: `/deliveries/${d.id}/files/${f.id}`, size: f.size }));
    if (d.hasMessage) jobs.push({ name: 'message.txt', urlPath: `/deliveries/${d.id}/message`, size: undefined });
    for (const job of jobs) {
      const target = safeJoin(dir, job.name);
      if (existsSync(target) && !options.overwrite) throw new ClientError('SEALDROP_E_CONFLICT', `${target} exists; move it away or use --overwrite`, EXIT.wrongState);
      mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
      const res = await api.request('GET', job.urlPath, { headers: { accept: '*/*' } });
      const type = res.headers.get('content-type') ?? '';
      const temp = `${target}.sealdrop-${randomBytes(6).toString('hex')}.partial`;
      const p = new Progress(job.name, job.size, showProgress(run));
      try {
        if (/^application\/json/i.test(type)) {
          const { message } = (await res.json()) as { message: string | null };
          if (message === null) continue;
          writeFileSync(temp, message, { mode: 0o600, flag: 'wx' });
        } else if (/^application\/pgp-encrypted/i.test(type)) {
          await decryptTo(api, res, await unlock(), temp, p);
        } else {
          await plainTo(api, res, temp, p);
        }
        fsyncFile(temp);
        renameSync(temp, target);
      } catch (err) {
        try {
          unlinkSync(temp);
        } catch {
          // not created
        }
        throw err;
      }
      p.finish();
      entry.files.push({ name: job.name, path: target, size: statSync(target).size });
      say(run, `${target}`);
    }
  }
  if (run.json) console.log(JSON.stringify({ deliveries: report }));
  else if (targets.length === 0) say(run, 'no new deliveries');
  return EXIT.ok;
}

function fsyncFile(file: string): void {
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A server-given name as one safe path segment. */
function safeSegment(name: string): string {
  // eslint-disable-next-line no-control-regex
  const cleaned = name.replace(/[\u0000-\u001f\u007f\\/:*?"<>|]/g, '_').trim();
  if (cleaned === '' || cleaned === '.' || cleaned === '..') return '_';
  return cleaned.slice(0, 255);
}

/** Joins a server-given relative name (which may contain "/") below `dir`, refusing escapes. */
function safeJoin(dir: string, name: string): string {
  const segments = name.split('/').map(safeSegment);
  const target = path.resolve(dir, ...segments);
  if (!target.startsWith(path.resolve(dir) + path.sep)) throw new ClientError('SEALDROP_E_INVALID_NAME', `refusing the file name ${JSON.stringify(name)}`, EXIT.failure);
  return target;
}

/** Wraps a response body so that transport failures are told apart from integrity failures. */
function trackedBody(res: Response): { stream: Readable; failed: () => Error | undefined; bytes: () => number } {
  let failure: Error | undefined;
  let bytes = 0;
  const src = bodyOf(res);
  const counter = new Transform({
    transform(chunk: Buffer, _e, cb) {
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  src.on('error', (err) => {
    failure = err;
    counter.destroy(err);
  });
  return { stream: src.pipe(counter), failed: () => failure, bytes: () => bytes };
}

async function decryptTo(api: ApiClient, res: Response, privateKey: openpgp.PrivateKey, temp: string, p: Progress): Promise<void> {
  const body = trackedBody(res);
  const declared = Number(res.headers.get('content-length') ?? NaN);
  try {
    const message = await openpgp.readMessage({ binaryMessage: Readable.toWeb(body.stream) as unknown as ReadableStream<Uint8Array> });
    // The plaintext streams to a temporary file while the MDC is computed; only a verified file is renamed.
    const { data } = await openpgp.decrypt({ message, decryptionKeys: privateKey, format: 'binary', config: { allowUnauthenticatedStream: true } });
    await pipeline(Readable.fromWeb(data as unknown as WebReadableStream<Uint8Array>), progressTap(p), createWriteStream(temp, { mode: 0o600, flags: 'wx' }));
  } catch (err) {
    const net = body.failed();
    if (net || (Number.isFinite(declared) && body.bytes() < declared && !(err instanceof ClientError))) throw networkError(api.base, net ?? err);
    if (err instanceof ClientError) throw err;
    throw new ClientError('SEALDROP_E_INTEGRITY', `the file failed its integrity check and was not written (${(err as Error).message})`, EXIT.integrity);
  }
}

async function plainTo(api: ApiClient, res: Response, temp: string, p: Progress): Promise<void> {
  const body = trackedBody(res);
  const declared = Number(res.headers.get('content-length') ?? NaN);
  try {
    await pipeline(body.stream, progressTap(p), createWriteStream(temp, { mode: 0o600, flags: 'wx' }));
  } catch (err) {
    throw networkError(api.base, body.failed() ?? err);
  }
  if (Number.isFinite(declared) && body.bytes() !== declared) {
    throw new ClientError('SEALDROP_E_INTEGRITY', `received ${body.bytes()} of ${declared} bytes; the file was not written`, EXIT.integrity);
  }
}

// ----------------------------------------------------------------------- key, list, status

/** `sealdrop key export`: the public key, or (--gnupg) the private key re-protected for GnuPG 2.2. */
export async function keyExport(run: ClientRun, options: { gnupg: boolean; out: string | undefined; force: boolean }): Promise<number> {
  const api = client(run);
  const { key } = await api.json<{ key: { privateKey: string; publicKey?: string; fingerprint: string } }>('GET', '/secupass/key');
  let armored: string;
  if (options.gnupg) {
    const secupass = await readSecupass(run.secupassFile, warn);
    const unlocked = await unlockPrivateKey(key.privateKey, secupass);
    // GnuPG 2.2 cannot read argon2 (S2K type 4) protection: re-protect the copy with the
    // iterated-and-salted S2K (SHA-256, AES-256, SHA-1 checksum), same SecuPass.
    const copy = await openpgp.encryptKey({
      privateKey: unlocked,
      passphrase: secupass,
      config: { s2kType: openpgp.enums.s2k.iterated, aeadProtect: false },
    });
    armored = copy.armor();
  } else {
    armored = key.publicKey ?? (await openpgp.readPrivateKey({ armoredKey: key.privateKey })).toPublic().armor();
  }
  if (options.out) {
    if (existsSync(options.out) && !options.force) throw new ClientError('SEALDROP_E_CONFLICT', `${options.out} exists; use --force to replace it`, EXIT.wrongState);
    writeFileSync(options.out, armored, { mode: 0o600 });
    say(run, `${options.gnupg ? 'private key (for gpg --import, protected by your SecuPass)' : 'public key'} ${key.fingerprint} written to ${options.out}`);
  } else {
    process.stdout.write(armored);
  }
  return EXIT.ok;
}

/** `sealdrop deliveries`: the caller's inbox or outbox. */
export async function listDeliveries(run: ClientRun, options: { box: string; state: string | undefined; limit: number | undefined }): Promise<number> {
  const api = client(run);
  const q = new URLSearchParams({ box: options.box });
  if (options.state) q.set('state', options.state);
  if (options.limit) q.set('limit', String(options.limit));
  const { deliveries } = await api.json<{ deliveries: DeliveryView[] }>('GET', `/deliveries?${q}`);
  if (run.json) {
    console.log(JSON.stringify({ deliveries }));
    return EXIT.ok;
  }
  for (const d of deliveries) {
    const who = options.box === 'inbox' ? d.sender : d.recipients.map((r) => `${r.email}:${r.state}`).join(',');
    const state = options.box === 'inbox' ? (d.recipients[0]?.state ?? d.state) : d.state;
    console.log([d.id, state, `L${d.level}`, d.createdAt.slice(0, 19), who, `${d.files.length} file(s)`, d.subject].join('\t'));
  }
  return EXIT.ok;
}

/** `sealdrop status ID`: one delivery in detail. */
export async function status(run: ClientRun, id: string): Promise<number> {
  const api = client(run);
  const { delivery: d } = await api.json<{ delivery: DeliveryView }>('GET', `/deliveries/${encodeURIComponent(id)}`);
  if (run.json) {
    console.log(JSON.stringify({ delivery: d }));
    return EXIT.ok;
  }
  console.log(`delivery  ${d.id}
subject   ${d.subject}
state     ${d.state} (level ${d.level}; you are ${d.role})
sender    ${d.sender}${d.owner !== d.sender ? ` (owner ${d.owner})` : ''}
created   ${d.createdAt}${d.sentAt ? `\nsent      ${d.sentAt}` : ''}
expires   ${d.expiresAt}
files     ${d.files.length}${d.hasMessage ? ' + message' : ''}`);
  for (const f of d.files) console.log(`  ${f.name}\t${formatBytes(f.size)}`);
  console.log('recipients');
  for (const r of d.recipients) console.log(`  ${r.email}\t${r.state}${r.key ? `\tkey ${r.key.fingerprint}` : ''}${r.downloadedAt ? `\tdownloaded ${r.downloadedAt}` : ''}`);
  return EXIT.ok;
}
