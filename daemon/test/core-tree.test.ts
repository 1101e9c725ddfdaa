/**
 * The virtual tree against the core in-process: folders, temporary names, rename completion,
 * trigger file, session-end and idle sending, inbox, and the rules every protocol shares.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Principal } from '../src/core/context.ts';
import { isSealdropError, type ErrorCode } from '../src/core/errors.ts';
import type { TreeWrite } from '../src/core/tree.ts';
import { EncryptPool, STAGE_BYTES } from '../src/crypto/encrypt-pool.ts';
import { Core } from '../src/core/index.ts';
import { DeliveryFileSchema, DeliverySchema, FolderActivitySchema, ProtocolSessionSchema } from '../src/store/entities.ts';
import { createHarness, sessionPrincipal, type Harness } from './support/core-harness.ts';

const PW = 'correct horse battery staple';
let h: Harness;

async function member(email: string, secupass?: string, role: 'member' | 'service' = 'member', owner?: string): Promise<Principal> {
  await h.core.accounts.createAccount({ accountId: null, email: 'test' }, { email, role, password: PW, owner });
  const p = await sessionPrincipal(h, email, PW);
  if (secupass) await h.core.secupass.activate(p, { secupass });
  return p;
}

async function put(p: Principal, path: string, data: Buffer, readBack = false): Promise<void> {
  const w = await h.core.tree.openWrite(p, path, { readBack });
  if (w.kind === 'upload') await new Promise<void>((resolve, reject) => w.upload.input.write(data, (err) => (err ? reject(err) : resolve())));
  await h.core.tree.closeWrite(p, w);
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await expect(promise).rejects.toSatisfy((e: unknown) => {
    if (!isSealdropError(e, code)) throw new Error(`expected ${code}, got ${String((e as Error)?.message)} (${(e as { code?: string }).code})`);
    return true;
  });
}

beforeEach(async () => {
  h = await createHarness({
    SEALDROP_DROP_FOLDERS: '[{name: invoices, owner: boss@example.org, recipients: [partner@example.net], level: 3, subject: "Invoices {date}"}]',
  });
});
afterEach(async () => h.close());

describe('the virtual tree', () => {
  it('lists folders by role and refuses what a caller may not touch', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    await member('boss@example.org', 'boss secupass long');
    const erp = await member('erp@example.org', undefined, 'service', 'boss@example.org');
    expect((await h.core.tree.list(alice, '/')).map((e) => e.name)).toEqual(['inbox', 'outbox']);
    expect((await h.core.tree.list(erp, '/')).map((e) => e.name)).toEqual(['invoices']);
    await expectCode(h.core.tree.stat(erp, '/outbox'), 'SEALDROP_E_NOT_FOUND');
    await expectCode(h.core.tree.stat(alice, '/invoices'), 'SEALDROP_E_NOT_FOUND');
    await expectCode(h.core.tree.openWrite(alice, '/inbox/x.txt'), 'SEALDROP_E_FORBIDDEN');
    await expectCode(h.core.tree.openWrite(alice, '/outbox/not-an-address/x.txt'), 'SEALDROP_E_INVALID_EMAIL');
    await expectCode(h.core.tree.openWrite(alice, '/x.txt'), 'SEALDROP_E_NOT_FOUND');
    await expectCode(h.core.tree.openWrite(alice, '/outbox/a@example.org/x\\y'), 'SEALDROP_E_INVALID_NAME');
    expect(h.core.tree.canonical('/outbox/../../etc/passwd')).toBe('/etc/passwd');
    await expectCode(h.core.tree.stat(alice, '/outbox/../../etc/passwd'), 'SEALDROP_E_NOT_FOUND');
    expect((await h.core.tree.stat(alice, '/outbox/Any@Example.org')).kind).toBe('dir');
  });

  it('collects uploads, completes temporary names by rename, sends on the trigger file once', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    const data = randomBytes(70_000);
    await put(alice, '/outbox/x@example.org/a.bin', data);
    await put(alice, '/outbox/x@example.org/b.pdf.filepart', Buffer.from('b'));
    await put(alice, '/outbox/x@example.org/.hidden', Buffer.from('h'));
    const listed = await h.core.tree.list(alice, '/outbox/x@example.org');
    expect(listed.map((e) => [e.name, e.size])).toEqual([
      ['.hidden', 1],
      ['a.bin', 70_000],
      ['b.pdf.filepart', 1],
    ]);
    expect((await h.core.tree.stat(alice, '/outbox/x@example.org/a.bin')).size).toBe(70_000);
    await h.core.tree.rename(alice, '/outbox/x@example.org/b.pdf.filepart', '/outbox/x@example.org/b.pdf', false);
    await expectCode(h.core.tree.rename(alice, '/outbox/x@example.org/b.pdf', '/outbox/x@example.org/a.bin', false), 'SEALDROP_E_CONFLICT');
    await expectCode(h.core.tree.rename(alice, '/outbox/x@example.org/b.pdf', '/outbox/y@example.org/b.pdf', true), 'SEALDROP_E_FORBIDDEN');
    await expectCode(h.core.tree.openWrite(alice, '/outbox/x@example.org/a.bin', { append: true }), 'SEALDROP_E_WRONG_STATE');
    expect((await h.mails()).length).toBe(0);
    await put(alice, '/outbox/x@example.org/.ready', Buffer.alloc(0));
    const out = await h.core.deliveries.list(alice, { box: 'outbox' });
    expect(out).toHaveLength(1);
    expect(out[0]?.state).toBe('sent');
    expect(out[0]?.subject).toBe('Files from alice@example.org');
    expect(out[0]?.files.map((f) => f.name)).toEqual(['a.bin', 'b.pdf']);
    expect((await h.mails('x@example.org')).map((m) => m.template)).toEqual(['invitation']);
    expect(await h.core.tree.list(alice, '/outbox/x@example.org')).toEqual([]);
    // A second trigger with nothing new sends nothing.
    await put(alice, '/outbox/x@example.org/.ready', Buffer.alloc(0));
    expect(await h.core.deliveries.list(alice, { box: 'outbox' })).toHaveLength(1);
  });

  it('groups a subfolder into its own delivery with that subject; a failed first upload leaves no delivery', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    await put(alice, '/outbox/x@example.org/Q3 Report/r.txt', Buffer.from('r'));
    expect((await h.core.tree.list(alice, '/outbox/x@example.org')).map((e) => [e.name, e.kind])).toEqual([['Q3 Report', 'dir']]);
    const w = (await h.core.tree.openWrite(alice, '/outbox/z@example.org/big.bin')) as TreeWrite & { kind: 'upload' };
    w.upload.input.write(randomBytes(1000));
    await h.core.tree.abortWrite(alice, w);
    expect(await h.orm.em.fork().count(DeliverySchema, { folderKey: 'outbox/z@example.org' })).toBe(0);
    await h.core.tree.mkdir(alice, '/outbox/x@example.org/Empty');
    await expectCode(h.core.tree.rmdir(alice, '/outbox/x@example.org/Q3 Report'), 'SEALDROP_E_WRONG_STATE');
    await h.core.tree.rmdir(alice, '/outbox/x@example.org/Empty');
    await expectCode(h.core.tree.stat(alice, '/outbox/x@example.org/Empty'), 'SEALDROP_E_NOT_FOUND');
    // The account's last clean session end sends what its sessions touched.
    await h.core.tree.sessionOpened(alice, 's1');
    await h.core.tree.sessionClosed(alice, 's1', true);
    const sent = await h.core.deliveries.list(alice, { box: 'outbox' });
    expect(sent.map((d) => [d.subject, d.state])).toEqual([['Q3 Report', 'sent']]);
  });

  it('sends on the last clean session end only, and never on an abnormal one', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    await h.core.tree.sessionOpened(alice, 'a');
    await h.core.tree.sessionOpened(alice, 'b');
    await put(alice, '/outbox/x@example.org/1.txt', Buffer.from('1'));
    await h.core.tree.sessionClosed(alice, 'a', true);
    expect((await h.core.deliveries.list(alice, { box: 'outbox' }))[0]?.state).toBe('open');
    await h.core.tree.sessionClosed(alice, 'b', false);
    expect((await h.core.deliveries.list(alice, { box: 'outbox' }))[0]?.state).toBe('open');
    await h.core.tree.sessionOpened(alice, 'c');
    await h.core.tree.sessionClosed(alice, 'c', true);
    expect((await h.core.deliveries.list(alice, { box: 'outbox' }))[0]?.state).toBe('sent');
  });

  it('counts the sessions of every instance before sending at a session end; a gone instance counts for nothing', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    // A second daemon instance on the same store (its own instance id, sessions and uploads).
    const other = new Core({ ...h.core.deps });
    expect(other.tree.instanceId).not.toBe(h.core.tree.instanceId);
    await h.core.tree.sessionOpened(alice, 'on-a');
    await other.tree.sessionOpened(alice, 'on-b');
    await put(alice, '/outbox/x@example.org/1.txt', Buffer.from('1'));
    await h.core.tree.sessionClosed(alice, 'on-a', true);
    const state = async () => (await h.core.deliveries.list(alice, { box: 'outbox' }))[0]?.state;
    expect(await state()).toBe('open');
    // The last session ends on the other instance: it sends what the first one's session wrote.
    await other.tree.sessionClosed(alice, 'on-b', true);
    expect(await state()).toBe('sent');
    expect(await h.orm.em.fork().count(FolderActivitySchema, { accountId: alice.accountId, kind: 'touched' })).toBe(0);

    // A session left open on an instance that stopped its heartbeat does not hold sending back.
    await other.tree.sessionOpened(alice, 'stale');
    await put(alice, '/outbox/y@example.org/2.txt', Buffer.from('2'));
    h.clock.offsetMs += 61_000;
    await h.core.tree.heartbeat();
    expect(await h.orm.em.fork().count(ProtocolSessionSchema, { id: 'stale' })).toBe(0);
    await h.core.tree.sessionOpened(alice, 'again');
    await h.core.tree.sessionClosed(alice, 'again', true);
    expect((await h.core.deliveries.list(alice, { box: 'outbox' })).map((d) => d.state)).toEqual(['sent', 'sent']);
  });

  it('keeps at most deliveries.maxOpenPerSender unsent deliveries per sender, however they are made', async () => {
    await h.close();
    h = await createHarness({ SEALDROP_DELIVERIES__MAX_OPEN_PER_SENDER: '3' });
    const alice = await member('alice@example.org', 'alice secupass long enough');
    // A subject subfolder, a second one, and a file straight into an address folder: three.
    await h.core.tree.mkdir(alice, '/outbox/x@example.org/one');
    await h.core.tree.mkdir(alice, '/outbox/x@example.org/two');
    await put(alice, '/outbox/y@example.org/f.txt', Buffer.from('hi'));
    await expectCode(h.core.tree.mkdir(alice, '/outbox/x@example.org/three'), 'SEALDROP_E_LIMIT');
    await expectCode(put(alice, '/outbox/z@example.org/g.txt', Buffer.from('hi')), 'SEALDROP_E_LIMIT');
    await expectCode(h.core.deliveries.create(alice, { to: ['x@example.org'], subject: 'API', level: 3 }), 'SEALDROP_E_LIMIT');
    // Files into the open ones still go; another sender has a bound of its own.
    await put(alice, '/outbox/x@example.org/one/a.txt', Buffer.from('a'));
    const bob = await member('bob@example.org', 'bob secupass long enough');
    await h.core.tree.mkdir(bob, '/outbox/x@example.org/one');
    // Removing an empty one makes room again.
    await h.core.tree.rmdir(alice, '/outbox/x@example.org/two');
    await h.core.tree.mkdir(alice, '/outbox/x@example.org/three');
  });

  it('sends idle folders after the configured time', async () => {
    const idle = await createHarness({ SEALDROP_TREE__IDLE_SEND_SECONDS: '60' });
    const prev = h;
    h = idle;
    try {
      const alice = await member('alice@example.org', 'alice secupass long');
      await put(alice, '/outbox/x@example.org/1.txt', Buffer.from('1'));
      expect(await h.core.tree.sendIdle()).toBe(0);
      h.clock.offsetMs = 61_000;
      expect(await h.core.tree.sendIdle()).toBe(1);
      expect(await h.core.tree.sendIdle()).toBe(0);
    } finally {
      h = prev;
      await idle.close();
    }
  });

  it('lets a service account drop into its owner folder; the owner releases; the recipient reads /inbox', async () => {
    const boss = await member('boss@example.org', 'boss secupass long');
    const erp = await member('erp@example.org', undefined, 'service', 'boss@example.org');
    const partner = await member('partner@example.net', 'partner secupass long');
    const data = randomBytes(5000);
    await put(erp, '/invoices/inv-1.csv', data);
    await put(erp, '/invoices/.ready', Buffer.alloc(0));
    const d = (await h.core.deliveries.list(boss, { box: 'outbox' }))[0];
    expect(d).toMatchObject({ owner: 'boss@example.org', sender: 'erp@example.org', state: 'sent', dropFolder: 'invoices' });
    expect(d?.subject).toMatch(/^Invoices \d{4}-\d{2}-\d{2}$/);
    // The partner's key was active at upload: available at once, no release needed.
    expect(d?.recipients[0]?.state).toBe('available');
    const [dir] = await h.core.tree.list(partner, '/inbox');
    expect(dir?.name).toMatch(/^\d{4}-\d{2}-\d{2} Invoices \d{4}-\d{2}-\d{2} \[[0-9a-f]{8}\]$/);
    const files = await h.core.tree.list(partner, `/inbox/${dir?.name}`);
    expect(files.map((f) => f.name)).toEqual(['inv-1.csv.pgp']);
    const dl = await h.core.tree.openRead(partner, `/inbox/${dir?.name}/inv-1.csv.pgp`);
    const parts: Buffer[] = [];
    for await (const c of dl.stream as Readable) parts.push(c as Buffer);
    const bytes = Buffer.concat(parts);
    expect(bytes.length).toBe(files[0]?.size);
    const key = await h.core.secupass.getKey(partner);
    const priv = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: key.privateKey }), passphrase: 'partner secupass long' });
    const { data: plain, filename } = await openpgp.decrypt({ message: await openpgp.readMessage({ binaryMessage: bytes }), decryptionKeys: priv, format: 'binary' });
    expect(Buffer.from(plain as Uint8Array).equals(data)).toBe(true);
    expect(filename).toBe('inv-1.csv');
    await expectCode(h.core.tree.remove(partner, `/inbox/${dir?.name}/inv-1.csv.pgp`), 'SEALDROP_E_FORBIDDEN');
    await expectCode(h.core.tree.openRead(erp, '/invoices/inv-1.csv'), 'SEALDROP_E_NOT_FOUND');
    void Readable;
  });

  it('keeps the literal file name of a temporary upload without its temporary suffix', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    expect(h.core.tree.isTempName('x.pdf.filepart')).toBe(true);
    // The trigger name is a trigger only at the top of a delivery (handled before); elsewhere a dotfile.
    expect(h.core.tree.isTempName('.ready')).toBe(true);
    expect(h.core.tree.isTempName('~$doc.docx')).toBe(true);
    expect(h.core.tree.isTempName('Thumbs.db')).toBe(true);
    expect(h.core.tree.isTempName('.part')).toBe(true);
    expect(h.core.tree.isTempName('report.tmp.pdf')).toBe(false);
    expect(h.core.tree.finalNameOf('x.pdf.filepart')).toBe('x.pdf');
    void alice;
  });

  it('shares the upload buffer budget among the uploads running, and every way an upload ends gives its share back', async () => {
    await h.close();
    h = await createHarness({ SEALDROP_SERVER__UPLOAD_BUFFER_BYTES: String(6 * 1024 * 1024) });
    const alice = await member('alice@example.org', 'alice secupass long');
    const MiB = 1024 * 1024;
    const open = async (name: string) => {
      const w = await h.core.tree.openWrite(alice, `/outbox/bob@example.org/${name}`);
      if (w.kind !== 'upload') throw new Error('expected an upload');
      return w;
    };
    const a = await open('a.bin');
    expect(a.upload.holdBytes).toBe(4 * MiB); // alone: the ceiling
    const b = await open('b.bin');
    const c = await open('c.bin');
    expect([a, b, c].map((w) => w.upload.holdBytes)).toEqual([2 * MiB, 2 * MiB, 2 * MiB]); // 6 MiB / 3
    const more = await Promise.all(Array.from({ length: 12 }, (_, i) => open(`m${i}.bin`)));
    expect(a.upload.holdBytes).toBe(512 * 1024); // 6 MiB / 15 is below the floor
    // Completed, aborted and failed uploads all give their share back.
    await new Promise<void>((resolve, reject) => a.upload.input.write(Buffer.from('x'), (err) => (err ? reject(err) : resolve())));
    await h.core.tree.closeWrite(alice, a);
    await h.core.tree.abortWrite(alice, b);
    for (const w of more) await h.core.tree.abortWrite(alice, w);
    expect(c.upload.holdBytes).toBe(4 * MiB);
    c.upload.input.destroy(new Error('client went away'));
    await h.core.tree.abortWrite(alice, c);
    const d = await open('d.bin');
    const e = await open('e.bin');
    expect([d.upload.holdBytes, e.upload.holdBytes]).toEqual([3 * MiB, 3 * MiB]);
    await h.core.tree.abortWrite(alice, d);
    await h.core.tree.abortWrite(alice, e);
  });

  it('reads an unsent file back only within the read-back window of a WebDAV upload, after checking the ciphertext', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    const data = randomBytes(200_000);
    const read = async (path: string) => Buffer.concat(await (await h.core.tree.openRead(alice, path)).stream.toArray());
    // SFTP-style uploads keep no read-back key.
    await put(alice, '/outbox/bob@example.org/sftp.bin', data);
    await expectCode(h.core.tree.openRead(alice, '/outbox/bob@example.org/sftp.bin'), 'SEALDROP_E_FORBIDDEN');
    // A WebDAV-style upload (level 3 in the outbox) reads back as the original bytes.
    await put(alice, '/outbox/bob@example.org/dav.bin', data, true);
    expect((await read('/outbox/bob@example.org/dav.bin')).equals(data)).toBe(true);
    const em = h.orm.em.fork();
    const row = await em.findOneOrFail(DeliveryFileSchema, { name: 'dav.bin' });
    expect(row.readbackKey).not.toBeNull();
    // No plaintext of the session key or the file at rest: the key is sealed, the blob is ciphertext.
    expect(Buffer.from(row.readbackKey as Uint8Array).length).toBeGreaterThan(32);
    // A changed blob is refused before the first byte.
    const blobKey = row.blobKey as string;
    const blobPath = path.join(h.paths.blobDir, blobKey.slice(0, 2), blobKey.slice(2, 4), blobKey);
    const original = readFileSync(blobPath);
    for (const at of [2, 100, Math.floor(original.length / 2), original.length - 5]) {
      const altered = Buffer.from(original);
      altered[at] = (altered[at] as number) ^ 1;
      writeFileSync(blobPath, altered);
      await expectCode(h.core.tree.openRead(alice, '/outbox/bob@example.org/dav.bin'), 'SEALDROP_E_INTERNAL');
    }
    for (const bytes of [original.subarray(0, original.length - 1000), Buffer.concat([original, Buffer.of(0)])]) {
      writeFileSync(blobPath, bytes);
      await expectCode(h.core.tree.openRead(alice, '/outbox/bob@example.org/dav.bin'), 'SEALDROP_E_INTERNAL');
    }
    writeFileSync(blobPath, original);
    // The window closes with time (expiry sweep wipes the key) and when the folder is sent.
    h.clock.offsetMs = (h.config.webdav.readBackSeconds + 1) * 1000;
    await expectCode(h.core.tree.openRead(alice, '/outbox/bob@example.org/dav.bin'), 'SEALDROP_E_FORBIDDEN');
    await h.core.deliveries.expireDue();
    expect((await h.orm.em.fork().findOneOrFail(DeliveryFileSchema, { name: 'dav.bin' })).readbackKey).toBeNull();
    h.clock.offsetMs = 0;
    await put(alice, '/outbox/bob@example.org/again.bin', data, true);
    expect((await read('/outbox/bob@example.org/again.bin')).equals(data)).toBe(true);
    await put(alice, '/outbox/bob@example.org/.ready', Buffer.alloc(0));
    const sent = await h.orm.em.fork().findOneOrFail(DeliveryFileSchema, { name: 'again.bin' });
    expect([sent.readbackKey, sent.readbackUntil]).toEqual([null, null]);
  });

  it('reads a level 2 file back after checking every chunk, and refuses an altered one before the first byte', async () => {
    await h.close();
    h = await createHarness({ SEALDROP_DROP_FOLDERS: '[{name: notes, owner: boss@example.org, recipients: [partner@example.net], level: 2, subject: "Notes"}]' });
    await member('boss@example.org', 'boss secupass long');
    const erp = await member('erp@example.org', undefined, 'service', 'boss@example.org');
    const data = randomBytes(300_000);
    await put(erp, '/notes/n.bin', data, true);
    const read = async () => Buffer.concat(await (await h.core.tree.openRead(erp, '/notes/n.bin')).stream.toArray());
    expect((await read()).equals(data)).toBe(true);
    const row = await h.orm.em.fork().findOneOrFail(DeliveryFileSchema, { name: 'n.bin' });
    const blobKey = row.blobKey as string;
    const blobPath = path.join(h.paths.blobDir, blobKey.slice(0, 2), blobKey.slice(2, 4), blobKey);
    const original = readFileSync(blobPath);
    for (const at of [100, Math.floor(original.length / 2), original.length - 3]) {
      const altered = Buffer.from(original);
      altered[at] = (altered[at] as number) ^ 1;
      writeFileSync(blobPath, altered);
      await expectCode(h.core.tree.openRead(erp, '/notes/n.bin'), 'SEALDROP_E_INTERNAL');
    }
    writeFileSync(blobPath, original.subarray(0, original.length - 1000));
    await expectCode(h.core.tree.openRead(erp, '/notes/n.bin'), 'SEALDROP_E_INTERNAL');
    writeFileSync(blobPath, original);
    expect((await read()).equals(data)).toBe(true);
  });

  it('keeps folders inside a delivery: make, list, move, copy, remove; the recipient sees the same structure', async () => {
    await member('boss@example.org', 'boss secupass long');
    const erp = await member('erp@example.org', undefined, 'service', 'boss@example.org');
    const partner = await member('partner@example.net', 'partner secupass long');
    const names = async (path: string) => (await h.core.tree.list(erp, path)).map((e) => `${e.name}${e.kind === 'dir' ? '/' : ''}`).sort();
    await h.core.tree.mkdir(erp, '/invoices/2026');
    await expectCode(h.core.tree.mkdir(erp, '/invoices/2026'), 'SEALDROP_E_CONFLICT');
    await expectCode(h.core.tree.mkdir(erp, '/invoices/none/deeper'), 'SEALDROP_E_NOT_FOUND');
    await expectCode(h.core.tree.openWrite(erp, '/invoices/none/x.csv'), 'SEALDROP_E_NOT_FOUND');
    await h.core.tree.mkdir(erp, '/invoices/2026/11');
    await put(erp, '/invoices/2026/11/a.csv', Buffer.from('a'));
    await put(erp, '/invoices/top.csv', Buffer.from('t'));
    await expectCode(h.core.tree.openWrite(erp, '/invoices/top.csv/x'), 'SEALDROP_E_NOT_FOUND');
    await expectCode(h.core.tree.openWrite(erp, '/invoices/2026'), 'SEALDROP_E_CONFLICT');
    expect(await names('/invoices')).toEqual(['2026/', 'top.csv']);
    expect(await names('/invoices/2026')).toEqual(['11/']);
    expect((await h.core.tree.stat(erp, '/invoices/2026/11')).kind).toBe('dir');
    // Copy a folder (ciphertext and wraps copied), move it, rename a file into a folder.
    await h.core.tree.copy(erp, '/invoices/2026/11', '/invoices/2026/12', false);
    expect(await names('/invoices/2026/12')).toEqual(['a.csv']);
    await expectCode(h.core.tree.copy(erp, '/invoices/2026/11', '/invoices/2026/12', false), 'SEALDROP_E_CONFLICT');
    expect(await h.core.tree.copy(erp, '/invoices/2026/11', '/invoices/2026/12', true)).toBe(true);
    await h.core.tree.rename(erp, '/invoices/2026/12', '/invoices/2025', false);
    await h.core.tree.rename(erp, '/invoices/top.csv', '/invoices/2025/top.csv', false);
    expect(await names('/invoices')).toEqual(['2025/', '2026/']);
    expect(await names('/invoices/2025')).toEqual(['a.csv', 'top.csv']);
    await expectCode(h.core.tree.rename(erp, '/invoices/2025', '/invoices/2025/inner', false), 'SEALDROP_E_FORBIDDEN');
    // An empty folder, removed; a folder with files, removed whole.
    await h.core.tree.mkdir(erp, '/invoices/empty');
    await h.core.tree.rmdir(erp, '/invoices/empty');
    await expectCode(h.core.tree.rmdir(erp, '/invoices/2025'), 'SEALDROP_E_WRONG_STATE');
    await h.core.tree.copy(erp, '/invoices/2025', '/invoices/gone', false);
    await h.core.tree.removeTree(erp, '/invoices/gone');
    expect(await names('/invoices')).toEqual(['2025/', '2026/']);
    // Sent: the recipient's inbox has the same folders.
    await put(erp, '/invoices/.ready', Buffer.alloc(0));
    const [dir] = await h.core.tree.list(partner, '/inbox');
    const root = `/inbox/${dir?.name}`;
    expect((await h.core.tree.list(partner, root)).map((e) => e.name).sort()).toEqual(['2025', '2026']);
    expect((await h.core.tree.list(partner, `${root}/2025`)).map((e) => e.name).sort()).toEqual(['a.csv.pgp', 'top.csv.pgp']);
    expect((await h.core.tree.list(partner, `${root}/2026/11`)).map((e) => e.name)).toEqual(['a.csv.pgp']);
    const dl = await h.core.tree.openRead(partner, `${root}/2025/top.csv.pgp`);
    expect((await dl.stream.toArray()).length).toBeGreaterThan(0);
  });

  it('moves and copies only within one delivery; renames a subject subfolder', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    await put(alice, '/outbox/bob@example.org/a.txt', Buffer.from('a'));
    await h.core.tree.mkdir(alice, '/outbox/bob@example.org/untitled folder');
    await put(alice, '/outbox/bob@example.org/untitled folder/b.txt', Buffer.from('b'));
    await expectCode(h.core.tree.rename(alice, '/outbox/bob@example.org/a.txt', '/outbox/carol@example.org/a.txt', false), 'SEALDROP_E_FORBIDDEN');
    await expectCode(h.core.tree.copy(alice, '/outbox/bob@example.org/a.txt', '/outbox/bob@example.org/untitled folder/a.txt', false), 'SEALDROP_E_FORBIDDEN');
    await h.core.tree.rename(alice, '/outbox/bob@example.org/untitled folder', '/outbox/bob@example.org/Contract', false);
    const subs = (await h.core.tree.list(alice, '/outbox/bob@example.org')).map((e) => e.name).sort();
    expect(subs).toEqual(['Contract', 'a.txt']);
    const d = await h.core.deliveries.folderDelivery(alice, 'outbox/bob@example.org/Contract');
    expect(d?.subject).toBe('Contract');
    await h.core.tree.removeTree(alice, '/outbox/bob@example.org/Contract');
    expect(await h.core.deliveries.folderDelivery(alice, 'outbox/bob@example.org/Contract')).toBeNull();
    await expectCode(h.core.tree.removeTree(alice, '/outbox/bob@example.org'), 'SEALDROP_E_FORBIDDEN');
  });

  it('sends a renamed subject folder at the clean session end, under its new name; refuses the rename while an upload into it runs', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    await h.core.tree.sessionOpened(alice, 's1');
    await put(alice, '/outbox/bob@example.org/Sub1/a.txt', Buffer.from('a'));
    const w = (await h.core.tree.openWrite(alice, '/outbox/bob@example.org/Sub1/b.txt')) as TreeWrite & { kind: 'upload' };
    await expectCode(h.core.tree.rename(alice, '/outbox/bob@example.org/Sub1', '/outbox/bob@example.org/Sub2', false), 'SEALDROP_E_WRONG_STATE');
    await h.core.tree.abortWrite(alice, w);
    await h.core.tree.rename(alice, '/outbox/bob@example.org/Sub1', '/outbox/bob@example.org/Sub2', false);
    await h.core.tree.sessionClosed(alice, 's1', true);
    const out = await h.core.deliveries.list(alice, { box: 'outbox' });
    expect(out.map((d) => [d.subject, d.state])).toEqual([['Sub2', 'sent']]);
  });

  it('keeps a folder delivery whose first upload failed while another upload into it still runs', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    const first = (await h.core.tree.openWrite(alice, '/outbox/dave@example.org/f1.bin')) as TreeWrite & { kind: 'upload' };
    const second = (await h.core.tree.openWrite(alice, '/outbox/dave@example.org/f2.bin')) as TreeWrite & { kind: 'upload' };
    await new Promise<void>((resolve, reject) => second.upload.input.write(Buffer.from('second file'), (err) => (err ? reject(err) : resolve())));
    // The upload that created the delivery fails: the one still running keeps it.
    await h.core.tree.abortWrite(alice, first);
    await h.core.tree.closeWrite(alice, second);
    expect((await h.core.tree.list(alice, '/outbox/dave@example.org')).map((e) => [e.name, e.size])).toEqual([['f2.bin', 11]]);
    // Alone, a failed first upload still leaves no delivery behind.
    const lone = (await h.core.tree.openWrite(alice, '/outbox/erin@example.org/f.bin')) as TreeWrite & { kind: 'upload' };
    await h.core.tree.abortWrite(alice, lone);
    expect(await h.orm.em.fork().count(DeliverySchema, { folderKey: 'outbox/erin@example.org' })).toBe(0);
  });

  it('names inbox folders within 80 characters and 160 bytes of subject, never cutting a character apart', () => {
    const at = new Date('2026-12-01T00:00:00Z');
    const name = (subject: string) => h.core.tree.inboxName({ subject, sentAt: at, createdAt: at, id: '12345678-aaaa-bbbb-cccc-000000000000' } as never);
    expect(name(`${'a'.repeat(79)}\u{1F600}tail`)).toBe(`2026-12-01 ${'a'.repeat(79)}\u{1F600} [12345678]`);
    const cjk = name('\u6f22'.repeat(80));
    expect(cjk).toBe(`2026-12-01 ${'\u6f22'.repeat(53)} [12345678]`);
    expect(Buffer.byteLength(cjk)).toBeLessThan(200);
    expect(name('line\u202eevil/x')).toBe('2026-12-01 line_evil_x [12345678]');
  });

  it('lists only the subfolders of that very address: `_` and `%` in an address are not wildcards', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    await put(alice, '/outbox/xzy@example.org/SecretSub/a.txt', Buffer.from('a'));
    await put(alice, '/outbox/x_y@example.org/Own/b.txt', Buffer.from('b'));
    expect((await h.core.tree.list(alice, '/outbox/x_y@example.org')).map((e) => e.name)).toEqual(['Own']);
    expect(await h.core.tree.list(alice, '/outbox/%@example.org')).toEqual([]);
  });

  it('refuses an exclusive open of an existing file as a conflict, and names with bidirectional controls', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    await put(alice, '/outbox/bob@example.org/a.txt', Buffer.from('a'));
    await expectCode(h.core.tree.openWrite(alice, '/outbox/bob@example.org/a.txt', { append: true, exclusive: true }), 'SEALDROP_E_CONFLICT');
    for (const c of ['\u202e', '\u202d', '\u202a', '\u2066', '\u2069', '\u0085', '\u2028', '\u2029', '\u200b', '\ufeff']) {
      await expectCode(h.core.tree.openWrite(alice, `/outbox/bob@example.org/invoice${c}fdp.exe`), 'SEALDROP_E_INVALID_NAME');
    }
    // Direction marks are part of ordinary right-to-left names.
    await put(alice, '/outbox/bob@example.org/\u05d3\u05d5\u05d7\u200f.pdf', Buffer.from('r'));
  });

  it('keeps a trigger name inside a folder of a delivery as a temporary file: never delivered, sends nothing', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    await put(alice, '/outbox/bob@example.org/S/keep.txt', Buffer.from('k'));
    await h.core.tree.mkdir(alice, '/outbox/bob@example.org/S/d');
    await put(alice, '/outbox/bob@example.org/S/d/.ready', Buffer.from('r'));
    expect((await h.core.deliveries.list(alice, { box: 'outbox' })).map((d) => d.state)).toEqual(['open']);
    await put(alice, '/outbox/bob@example.org/S/.ready', Buffer.alloc(0));
    const out = await h.core.deliveries.list(alice, { box: 'outbox' });
    expect(out.map((d) => [d.subject, d.state, d.files.map((f) => f.name)])).toEqual([['S', 'sent', ['keep.txt']]]);
  });
});

describe('SFTP-style writes through the encryption pool', () => {
  let pool: EncryptPool;
  beforeEach(async () => {
    // As the daemon runs: uploads are encrypted in a worker, and Upload.write stages its input.
    await h.close();
    pool = new EncryptPool(1);
    h = await createHarness({}, 'sqlite', pool);
  });
  afterEach(async () => pool.close());

  it('copies written data as it arrives: the caller may reuse its buffer at once; staged bytes count', async () => {
    const alice = await member('alice@example.org', 'alice secupass long');
    const data = randomBytes(3 * STAGE_BYTES + 12_345);
    const w = (await h.core.tree.openWrite(alice, '/outbox/bob@example.org/s.bin', { readBack: true })) as TreeWrite & { kind: 'upload' };
    // One scratch buffer for every write, overwritten as soon as write() returns (as ssh2 may
    // reuse a packet buffer): what was stored must be the bytes at the time of each call.
    const scratch = Buffer.alloc(100_000);
    const sizes = [1, 99_999, 70_000, 100_000, 5];
    for (let off = 0, i = 0; off < data.length; i++) {
      const n = Math.min(sizes[i % sizes.length] as number, data.length - off);
      data.copy(scratch, 0, off, off + n);
      const accepted = w.upload.write(scratch.subarray(0, n));
      scratch.fill(0xee);
      off += n;
      expect(w.upload.bytes).toBe(off);
      await accepted;
    }
    await h.core.tree.closeWrite(alice, w);
    const back = Buffer.concat(await (await h.core.tree.openRead(alice, '/outbox/bob@example.org/s.bin')).stream.toArray());
    expect(back.equals(data)).toBe(true);
    expect((await h.core.tree.stat(alice, '/outbox/bob@example.org/s.bin')).size).toBe(data.length);

    // Aborted with bytes still staged: nothing remains.
    const blobKeys = async () => {
      const keys: string[] = [];
      for await (const k of h.blobs.list()) keys.push(k);
      return keys.sort();
    };
    const blobsBefore = await blobKeys();
    const a = (await h.core.tree.openWrite(alice, '/outbox/bob@example.org/gone.bin')) as TreeWrite & { kind: 'upload' };
    await a.upload.write(randomBytes(1000));
    expect(a.upload.buffered).toBe(1000);
    await h.core.tree.abortWrite(alice, a);
    expect((await h.core.tree.list(alice, '/outbox/bob@example.org')).map((e) => e.name)).toEqual(['s.bin']);
    expect(await blobKeys()).toEqual(blobsBefore);
  });
});
