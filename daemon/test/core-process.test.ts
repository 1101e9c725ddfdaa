/**
 * The delivery process against the core in-process (real SQLite and PostgreSQL, real blob
 * folder, real OpenPGP): states, wraps, resets, races, levels 1-4, expiry, revoke, audit chain.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../src/core/audit.ts';
import type { Principal } from '../src/core/context.ts';
import { isSealdropError, type ErrorCode } from '../src/core/errors.ts';
import { AuditEventSchema, KeyWrapSchema, SecuPassKeySchema } from '../src/store/entities.ts';
import { DIALECTS } from '../src/store/orm.ts';
import { createHarness, sessionPrincipal, type Harness } from './support/core-harness.ts';

const PW = 'correct horse battery staple';
const SP_ALICE = 'alice secupass 4711 !';
const SP_NEW = 'newbie secupass 0815 ?';

let h: Harness;

async function member(email: string, secupass?: string): Promise<Principal> {
  await h.core.accounts.createAccount({ accountId: null, email: 'test' }, { email, role: 'member', password: PW });
  const p = await sessionPrincipal(h, email, PW);
  if (secupass) await h.core.secupass.activate(p, { secupass });
  return p;
}

async function admin(): Promise<Principal> {
  await h.core.accounts.createAccount({ accountId: null, email: 'test' }, { email: 'admin@example.org', role: 'admin', password: PW });
  return sessionPrincipal(h, 'admin@example.org', PW);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

async function decryptFor(p: Principal, secupass: string, data: Buffer): Promise<Buffer> {
  const key = await h.core.secupass.getKey(p);
  const privateKey = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: key.privateKey }), passphrase: secupass });
  const { data: out } = await openpgp.decrypt({ message: await openpgp.readMessage({ binaryMessage: data }), decryptionKeys: privateKey, format: 'binary' });
  return Buffer.from(out as Uint8Array);
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await expect(promise).rejects.toSatisfy((e: unknown) => {
    if (!isSealdropError(e, code)) throw new Error(`expected ${code}, got ${String((e as Error)?.message ?? e)} (${(e as { code?: string }).code})`);
    return true;
  });
}

/** Registers an invited recipient from the token in its invitation mail and logs in. */
async function registerFromMail(email: string): Promise<Principal> {
  const invitation = (await h.mails(email)).filter((m) => m.template === 'invitation').at(-1);
  expect(invitation, `invitation mail to ${email}`).toBeDefined();
  const token = new URL(invitation?.params.link as string).searchParams.get('token');
  await h.core.accounts.register({ token, password: PW }, '192.0.2.7');
  await expectCode(h.core.accounts.register({ token, password: PW }, undefined), 'SEALDROP_E_TOKEN_INVALID');
  return sessionPrincipal(h, email, PW);
}

describe.each(DIALECTS)('on %s', (dialect) => {
  beforeEach(async () => {
    h = await createHarness({}, dialect);
  });
  afterEach(async () => {
    await h.close();
  });

  describe('level 3/4 process', () => {
    it('invites, activates, releases server-side without opening a blob, and the recipient decrypts', async () => {
      const alice = await member('alice@example.org', SP_ALICE);
      const file = randomBytes(200_000);
      const d = await h.core.deliveries.create(alice, { to: ['New@Example.org'], subject: 'Contract', level: 4, message: 'secret message text' });
      await h.core.deliveries.addFile(alice, d.id, 'contract.pdf', Readable.from([file]));
      const sent = await h.core.deliveries.send(alice, d.id);
      expect(sent.recipients.map((r) => [r.email, r.state])).toEqual([['new@example.org', 'awaiting_registration']]);

      const invitation = (await h.mails('new@example.org'))[0];
      expect(invitation?.template).toBe('invitation');
      expect(JSON.stringify(invitation?.params)).not.toContain('contract.pdf');
      expect(JSON.stringify(invitation?.params)).not.toContain('secret message');

      const newbie = await registerFromMail('new@example.org');
      await expectCode(h.core.deliveries.download(newbie, d.id, sent.files[0]?.id as string), 'SEALDROP_E_SECUPASS_REQUIRED');
      await h.core.secupass.activate(newbie, { secupass: SP_NEW });
      expect((await h.mails('alice@example.org')).map((m) => m.template)).toContain('release_needed');
      expect((await h.core.deliveries.notifications(alice)).map((n) => n.kind)).toContain('release_needed');
      await expectCode(h.core.deliveries.download(newbie, d.id, sent.files[0]?.id as string), 'SEALDROP_E_NOT_RELEASED');

      await expectCode(h.core.deliveries.release(alice, d.id, 'wrong secupass'), 'SEALDROP_E_WRONG_SECUPASS');
      await expectCode(h.core.deliveries.release(newbie, d.id, SP_NEW), 'SEALDROP_E_SCOPE');
      const gets = h.blobs.gets;
      const released = await h.core.deliveries.release(alice, d.id, SP_ALICE);
      expect(h.blobs.gets).toBe(gets); // a release never opens a blob
      expect(released.recipients[0]?.state).toBe('available');
      expect(released.recipients[0]?.releasedFingerprint).toBe(released.recipients[0]?.key?.fingerprint);

      const dl = await h.core.deliveries.download(newbie, d.id, sent.files[0]?.id as string);
      expect(dl.fileName).toBe('contract.pdf.pgp');
      const bytes = await readAll(dl.stream);
      expect(bytes.length).toBe(dl.size);
      expect((await decryptFor(newbie, SP_NEW, bytes)).equals(file)).toBe(true);
      const msg = await readAll((await h.core.deliveries.download(newbie, d.id, { kind: 'message' })).stream);
      expect((await decryptFor(newbie, SP_NEW, msg)).toString()).toBe('secret message text');
      expect((await h.core.deliveries.get(newbie, d.id)).recipients[0]?.state).toBe('downloaded');
      expect((await h.mails('alice@example.org')).map((m) => m.template)).toContain('download_receipt');
      expect(await verifyAuditChain(h.orm.em.fork())).toMatchObject({ ok: true });
    });

    it('gives a recipient with an active SecuPass level 3/4 at once (wrapped at upload, no release)', async () => {
      const alice = await member('alice@example.org', SP_ALICE);
      const bob = await member('bob@example.org', 'bob secupass 1234 #');
      const d = await h.core.deliveries.create(alice, { to: ['bob@example.org'], subject: 'Now', level: 3 });
      await h.core.deliveries.addFile(alice, d.id, 'a.txt', Readable.from([Buffer.from('hello bob')]));
      const sent = await h.core.deliveries.send(alice, d.id);
      expect(sent.recipients[0]?.state).toBe('available');
      const data = await readAll((await h.core.deliveries.download(bob, d.id, sent.files[0]?.id as string)).stream);
      expect((await decryptFor(bob, 'bob secupass 1234 #', data)).toString()).toBe('hello bob');
      expect((await h.mails('bob@example.org')).map((m) => m.template)).toEqual(['delivery_ready']);
    });

    it('after a recipient reset: access lost, owner told, re-release after a new SecuPass without re-upload', async () => {
      const alice = await member('alice@example.org', SP_ALICE);
      const bob = await member('bob@example.org', 'bob secupass 1234 #');
      const root = await admin();
      const d = await h.core.deliveries.create(alice, { to: ['bob@example.org'], subject: 'Again', level: 3 });
      const file = await h.core.deliveries.addFile(alice, d.id, 'x.bin', Readable.from([randomBytes(5000)]));
      await h.core.deliveries.send(alice, d.id);
      const oldKey = await h.core.secupass.getKey(bob);

      const oldWrap = Buffer.from((await h.orm.em.fork().findOneOrFail(KeyWrapSchema, { keyId: oldKey.id })).pkesk);
      // SQLite: the live database files. PostgreSQL: what SQL reads of the key tables (plain
      // VACUUM does not zero dead row versions on disk; README "Keys and backups").
      const liveFiles = async (): Promise<Buffer[]> => {
        if (h.dialect === 'postgresql') {
          const conn = h.orm.em.fork().getConnection();
          const keys = await conn.execute<Array<{ private_key: string | null }>>('select private_key from secupass_key');
          const wraps = await conn.execute<Array<{ pkesk: Buffer }>>('select pkesk from key_wrap');
          return [...keys.map((k) => Buffer.from(k.private_key ?? '')), ...wraps.map((w) => w.pkesk)];
        }
        const dbDir = path.dirname(h.paths.sqlitePath);
        return readdirSync(dbDir).filter((f) => f.startsWith('sealdrop.db')).map((f) => readFileSync(path.join(dbDir, f)));
      };
      const keyBody = oldKey.privateKey.split('\n').find((l) => l.length >= 60) as string;
      expect((await liveFiles()).some((b) => b.includes(Buffer.from(keyBody)))).toBe(true); // the check below can fail
      expect((await liveFiles()).some((b) => b.includes(oldWrap.subarray(10, 60)))).toBe(true);
      const result = await h.core.secupass.adminReset({ accountId: root.accountId, email: root.email }, 'bob@example.org');
      expect(result).toMatchObject({ accessLost: 1, unreleasable: 0 });
      // No readable copy of the destroyed key or its wraps in the live database.
      for (const bytes of await liveFiles()) {
        expect(bytes.includes(Buffer.from(keyBody))).toBe(false);
        expect(bytes.includes(oldWrap.subarray(10, 60))).toBe(false);
      }
      const destroyed = await h.orm.em.fork().findOneOrFail(SecuPassKeySchema, { id: oldKey.id });
      expect(destroyed.privateKey).toBeNull();
      expect(await h.orm.em.fork().count(KeyWrapSchema, { keyId: oldKey.id })).toBe(0);
      await expectCode(h.core.deliveries.download(bob, d.id, file.id), 'SEALDROP_E_ACCESS_LOST');
      expect((await h.mails('alice@example.org')).map((m) => m.template)).toContain('access_lost');
      expect((await h.mails('bob@example.org')).map((m) => m.template)).toContain('secupass_reset');
      await expectCode(h.core.deliveries.release(alice, d.id, SP_ALICE), 'SEALDROP_E_WRONG_STATE');

      await h.core.secupass.activate(bob, { secupass: 'bob new secupass 999 %' });
      expect((await h.core.deliveries.get(alice, d.id)).recipients[0]?.state).toBe('awaiting_release');
      const material = await h.core.deliveries.releaseMaterial(alice, d.id);
      expect(material.recipients[0]).toMatchObject({ keyChanged: true, lastReleasedFingerprint: oldKey.fingerprint });
      const puts = h.blobs.gets;
      await h.core.deliveries.release(alice, d.id, SP_ALICE);
      expect(h.blobs.gets).toBe(puts);
      const data = await readAll((await h.core.deliveries.download(bob, d.id, file.id)).stream);
      expect((await decryptFor(bob, 'bob new secupass 999 %', data)).length).toBe(5000);
    });

    it('after the sender reset: deliveries awaiting release become unreleasable; open ones are revoked', async () => {
      const alice = await member('alice@example.org', SP_ALICE);
      const root = await admin();
      const d = await h.core.deliveries.create(alice, { to: ['pending@example.org'], subject: 'Never', level: 3 });
      await h.core.deliveries.addFile(alice, d.id, 'x', Readable.from([Buffer.from('x')]));
      await h.core.deliveries.send(alice, d.id);
      const open = await h.core.deliveries.create(alice, { to: ['pending@example.org'], subject: 'Draft', level: 3 });
      const r = await h.core.secupass.adminReset({ accountId: root.accountId, email: root.email }, 'alice@example.org');
      expect(r.unreleasable).toBe(1);
      expect((await h.core.deliveries.get(alice, d.id)).recipients[0]?.state).toBe('unreleasable');
      expect((await h.core.deliveries.get(alice, open.id)).state).toBe('revoked');
      expect((await h.mails('pending@example.org')).map((m) => m.template)).toContain('unreleasable');
      await expectCode(h.core.deliveries.release(alice, d.id, SP_ALICE), 'SEALDROP_E_UNRELEASABLE');
    });

    it('client-side release: material, wraps made with openpgp.js, validation of foreign wraps', async () => {
      const alice = await member('alice@example.org', SP_ALICE);
      const d = await h.core.deliveries.create(alice, { to: ['carol@example.org'], subject: 'Client', level: 4, message: 'hi carol' });
      const f = await h.core.deliveries.addFile(alice, d.id, 'c.txt', Readable.from([Buffer.from('for carol')]));
      await h.core.deliveries.send(alice, d.id);
      const carol = await registerFromMail('carol@example.org');
      // Carol makes her key on her device.
      const { privateKey, publicKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: 'carol@example.org' }], passphrase: 'carol secupass 77 &', format: 'armored' });
      await h.core.secupass.activate(carol, { publicKey, privateKey });

      const material = await h.core.deliveries.releaseMaterial(alice, d.id);
      expect(material.items).toHaveLength(2);
      const target = material.recipients[0];
      expect(target?.keyChanged).toBe(false);
      const ownerKey = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: (await h.core.secupass.getKey(alice)).privateKey }), passphrase: SP_ALICE });
      const recipientKey = await openpgp.readKey({ armoredKey: target?.publicKey as string });
      const wrapTo = async (key: openpgp.Key) =>
        Promise.all(
          material.items.map(async (item) => {
            const [sk] = await openpgp.decryptSessionKeys({ message: await openpgp.readMessage({ binaryMessage: Buffer.from(item.ownerWrap as string, 'base64') }), decryptionKeys: ownerKey });
            const msg = await openpgp.encryptSessionKey({ data: sk?.data as Uint8Array, algorithm: 'aes256', encryptionKeys: key, format: 'binary' });
            return { fileId: item.fileId, pkesk: Buffer.from(msg).toString('base64') };
          }),
        );
      // A wrap to some other key is refused.
      const stranger = (await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: 'x@example.org' }], format: 'object' })).publicKey;
      await expectCode(h.core.deliveries.addWraps(alice, d.id, { wraps: [{ recipientId: target?.recipientId, fingerprint: target?.fingerprint, items: await wrapTo(stranger) }] }), 'SEALDROP_E_WRAP_INVALID');
      await expectCode(h.core.deliveries.addWraps(alice, d.id, { wraps: [{ recipientId: target?.recipientId, fingerprint: 'ab'.repeat(20), items: await wrapTo(recipientKey) }] }), 'SEALDROP_E_WRAP_INVALID');
      const gets = h.blobs.gets;
      const after = await h.core.deliveries.addWraps(alice, d.id, { wraps: [{ recipientId: target?.recipientId, fingerprint: target?.fingerprint, items: await wrapTo(recipientKey) }] });
      expect(h.blobs.gets).toBe(gets);
      expect(after.recipients[0]?.state).toBe('available');
      const data = await readAll((await h.core.deliveries.download(carol, d.id, f.id)).stream);
      expect((await decryptFor(carol, 'carol secupass 77 &', data)).toString()).toBe('for carol');
    });

    it('never leaves a wrap for a destroyed key when a release races a reset', async () => {
      const alice = await member('alice@example.org', SP_ALICE);
      const root = await admin();
      for (let i = 0; i < 4; i++) {
        const email = `race${i}@example.org`;
        const r = await member(email, `race secupass ${i} long enough`);
        const d = await h.core.deliveries.create(alice, { to: [email], subject: `race ${i}`, level: 3 });
        await h.core.deliveries.addFile(alice, d.id, 'f', Readable.from([Buffer.from('x')]));
        // Destroy and recreate the recipient key so the delivery awaits release.
        await h.core.secupass.adminReset({ accountId: root.accountId, email: root.email }, email);
        await h.core.deliveries.send(alice, d.id);
        await h.core.secupass.activate(r, { secupass: `race secupass ${i} second key` });
        const results = await Promise.allSettled([
          h.core.deliveries.release(alice, d.id, SP_ALICE),
          h.core.secupass.adminReset({ accountId: root.accountId, email: root.email }, email),
        ]);
        expect(results[1]?.status).toBe('fulfilled');
        const em = h.orm.em.fork();
        const destroyed = await em.find(SecuPassKeySchema, { destroyedAt: { $ne: null } });
        expect(await em.count(KeyWrapSchema, { keyId: { $in: destroyed.map((k) => k.id) } })).toBe(0);
        const state = (await h.core.deliveries.get(alice, d.id)).recipients[0]?.state;
        expect(['access_lost', 'awaiting_secupass']).toContain(state);
      }
    });
  });

  describe('levels 1 and 2', () => {
    it('level 2: the recipient logs in and downloads the plaintext', async () => {
      const alice = await member('alice@example.org');
      const d = await h.core.deliveries.create(alice, { to: ['dave@example.org'], subject: 'L2', level: 2, message: 'plain note' });
      const f = await h.core.deliveries.addFile(alice, d.id, 'report.csv', Readable.from([Buffer.from('a,b\n1,2\n')]));
      await h.core.deliveries.send(alice, d.id);
      const dave = await registerFromMail('dave@example.org');
      const dl = await h.core.deliveries.download(dave, d.id, f.id);
      expect(dl.encrypted).toBe(false);
      expect((await readAll(dl.stream)).toString()).toBe('a,b\n1,2\n');
      expect(await h.core.deliveries.readMessage(dave, d.id)).toBe('plain note');
      expect((await h.mails('dave@example.org')).map((m) => m.template)).toEqual(['invitation', 'delivery_ready']);
    });

    it('level 1: the link downloads with an e-mail address; nobody else gets in', async () => {
      const alice = await member('alice@example.org');
      const d = await h.core.deliveries.create(alice, { to: ['eve@example.org'], subject: 'L1', level: 1 });
      const f = await h.core.deliveries.addFile(alice, d.id, 'flyer.txt', Readable.from([Buffer.from('public-ish')]));
      await h.core.deliveries.send(alice, d.id);
      const mail = (await h.mails('eve@example.org'))[0];
      expect(mail?.template).toBe('delivery_link');
      const token = new URL(mail?.params.link as string).searchParams.get('token');
      expect((await h.core.deliveries.linkView(token)).files.map((x) => x.name)).toEqual(['flyer.txt']);
      await expectCode(h.core.deliveries.downloadByLink(token, f.id, 'not-an-address', undefined), 'SEALDROP_E_INVALID_EMAIL');
      const dl = await h.core.deliveries.downloadByLink(token, f.id, 'someone@example.net', '198.51.100.1');
      expect((await readAll(dl.stream)).toString()).toBe('public-ish');
      await expectCode(h.core.deliveries.linkView(`sdl_${'A'.repeat(43)}`), 'SEALDROP_E_TOKEN_INVALID');
      const audit = await h.orm.em.fork().find(AuditEventSchema, { action: 'file.downloaded' });
      expect(audit[0]?.actor).toBe('someone@example.net');
    });
  });

  describe('expiry, revoke, limits', () => {
    it('expires deliveries: state, blobs gone, downloads refused', async () => {
      const alice = await member('alice@example.org', SP_ALICE);
      const bob = await member('bob@example.org', 'bob secupass 1234 #');
      const d = await h.core.deliveries.create(alice, { to: ['bob@example.org'], subject: 'Short', level: 3, expiresInDays: 1 });
      const f = await h.core.deliveries.addFile(alice, d.id, 'f', Readable.from([Buffer.from('x')]));
      await h.core.deliveries.send(alice, d.id);
      await expectCode(h.core.deliveries.create(alice, { to: ['bob@example.org'], subject: 'Long', level: 3, expiresInDays: 10_000 }), 'SEALDROP_E_VALIDATION');
      h.clock.offsetMs = 2 * 86_400_000;
      await expectCode(h.core.deliveries.download(bob, d.id, f.id), 'SEALDROP_E_EXPIRED');
      expect(await h.core.deliveries.expireDue()).toBe(1);
      expect((await h.core.deliveries.get(alice, d.id)).state).toBe('expired');
      const keys: string[] = [];
      for await (const k of h.blobs.list()) keys.push(k);
      expect(keys).toEqual([]);
    });

    it('revokes: recipients told, content deleted', async () => {
      const alice = await member('alice@example.org', SP_ALICE);
      const bob = await member('bob@example.org', 'bob secupass 1234 #');
      const d = await h.core.deliveries.create(alice, { to: ['bob@example.org'], subject: 'Oops', level: 3 });
      const f = await h.core.deliveries.addFile(alice, d.id, 'f', Readable.from([Buffer.from('x')]));
      await h.core.deliveries.send(alice, d.id);
      await expectCode(h.core.deliveries.revoke(bob, d.id), 'SEALDROP_E_FORBIDDEN');
      await h.core.deliveries.revoke(alice, d.id);
      await expectCode(h.core.deliveries.download(bob, d.id, f.id), 'SEALDROP_E_REVOKED');
      expect((await h.mails('bob@example.org')).map((m) => m.template)).toContain('delivery_revoked');
      await expectCode(h.core.deliveries.revoke(alice, d.id), 'SEALDROP_E_WRONG_STATE');
    });

    it('refuses foreign deliveries, bad names, wrong states and oversize files with clear codes', async () => {
      const small = await createHarness({ SEALDROP_DELIVERIES__MAX_FILE_BYTES: '1000' }, dialect);
      const prev = h;
      h = small;
      try {
        const alice = await member('alice@example.org', SP_ALICE);
        const mallory = await member('mallory@example.org', 'mallory secupass 66 !');
        const d = await h.core.deliveries.create(alice, { to: ['bob@example.org'], subject: 'S', level: 3 });
        await expectCode(h.core.deliveries.get(mallory, d.id), 'SEALDROP_E_NOT_FOUND');
        await expectCode(h.core.deliveries.addFile(mallory, d.id, 'x', Readable.from([Buffer.from('x')])), 'SEALDROP_E_NOT_FOUND');
        for (const bad of ['../x', 'a/b', 'a\u0000b', 'é'.repeat(150), '..', '']) {
          await expectCode(h.core.deliveries.addFile(alice, d.id, bad, Readable.from([Buffer.from('x')])), 'SEALDROP_E_INVALID_NAME');
        }
        await expectCode(h.core.deliveries.addFile(alice, d.id, 'big', Readable.from([randomBytes(600), randomBytes(600)])), 'SEALDROP_E_TOO_LARGE');
        await expectCode(h.core.deliveries.addFile(alice, d.id, 'big', Readable.from([]), { declaredSize: 5000 }), 'SEALDROP_E_TOO_LARGE');
        const keys: string[] = [];
        for await (const k of h.blobs.list()) keys.push(k);
        expect(keys).toEqual([]);
        await expectCode(h.core.deliveries.send(alice, d.id), 'SEALDROP_E_WRONG_STATE');
        await expectCode(h.core.deliveries.create(alice, { to: ['not an address'], subject: 'S', level: 3 }), 'SEALDROP_E_INVALID_EMAIL');
        await expectCode(h.core.deliveries.create(alice, { to: ['a@example.org'], subject: 'S', level: 5 }), 'SEALDROP_E_VALIDATION');
        const noKey = await member('nokey@example.org');
        await expectCode(h.core.deliveries.create(noKey, { to: ['a@example.org'], subject: 'S', level: 3 }), 'SEALDROP_E_SECUPASS_REQUIRED');
        await expectCode(h.core.secupass.activate(noKey, { secupass: PW }), 'SEALDROP_E_PASSWORD_POLICY');
        await expectCode(h.core.secupass.activate(alice, { secupass: 'another long secupass' }), 'SEALDROP_E_SECUPASS_ACTIVE');
      } finally {
        h = prev;
        await small.close();
      }
    });

    it('refuses expired invitation links, sessions and API tokens', async () => {
      const alice = await member('alice@example.org', SP_ALICE);
      const d = await h.core.deliveries.create(alice, { to: ['late@example.org'], subject: 'Late', level: 3 });
      await h.core.deliveries.addFile(alice, d.id, 'f', Readable.from([Buffer.from('x')]));
      await h.core.deliveries.send(alice, d.id);
      const token = new URL((await h.mails('late@example.org'))[0]?.params.link as string).searchParams.get('token');
      const { token: session } = await h.core.accounts.login({ email: 'alice@example.org', password: PW }, undefined, 'api');
      const { token: api } = await h.core.accounts.createApiToken(alice, { name: 't', scopes: ['fetch'], expiresInDays: 1 });
      h.clock.offsetMs = 15 * 86_400_000;
      await expectCode(h.core.accounts.register({ token, password: PW }, undefined), 'SEALDROP_E_TOKEN_INVALID');
      await expectCode(h.core.accounts.authenticate(session, 'api', undefined), 'SEALDROP_E_UNAUTHENTICATED');
      await expectCode(h.core.accounts.authenticate(api, 'api', undefined), 'SEALDROP_E_UNAUTHENTICATED');
      // A fresh invitation works again.
      await h.core.accounts.resendInvitation(alice, 'late@example.org');
      const again = new URL((await h.mails('late@example.org')).at(-1)?.params.link as string).searchParams.get('token');
      await h.core.accounts.register({ token: again, password: PW }, undefined);
      expect((await h.core.deliveries.get(alice, d.id)).recipients[0]?.state).toBe('awaiting_secupass');
    });

    it('keeps browser sessions apart from API sessions; they end on logout and at expiry; CSRF tokens bind to them', async () => {
      await member('alice@example.org', SP_ALICE);
      const ui = await h.core.accounts.loginUi({ email: 'alice@example.org', password: PW }, '127.0.0.1');
      expect(ui.token).toMatch(/^sdu_/);
      expect((await h.core.accounts.authenticateUi(ui.token, undefined))?.email).toBe('alice@example.org');
      await expectCode(h.core.accounts.authenticate(ui.token, 'api', undefined), 'SEALDROP_E_UNAUTHENTICATED');
      const { token: api } = await h.core.accounts.login({ email: 'alice@example.org', password: PW }, undefined, 'api');
      expect(await h.core.accounts.authenticateUi(api, undefined)).toBeNull();
      const csrf = h.core.accounts.csrfToken(ui.token);
      expect(h.core.accounts.checkCsrf(ui.token, csrf)).toBe(true);
      expect(h.core.accounts.checkCsrf(ui.token, `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}`)).toBe(false);
      expect(h.core.accounts.checkCsrf(api, csrf)).toBe(false);
      expect(h.core.accounts.checkCsrf(ui.token, undefined)).toBe(false);
      const other = await h.core.accounts.loginUi({ email: 'alice@example.org', password: PW }, undefined);
      await h.core.accounts.logoutUi(other.token);
      expect(await h.core.accounts.authenticateUi(other.token, undefined)).toBeNull();
      expect(await h.core.accounts.authenticateUi(ui.token, undefined)).not.toBeNull();
      h.clock.offsetMs = h.config.accounts.sessionTtlMinutes * 60_000 + 1000;
      expect(await h.core.accounts.authenticateUi(ui.token, undefined)).toBeNull();
      expect(await h.core.accounts.authenticateUi('sdu_not-a-token', undefined)).toBeNull();
    });

    it('keeps the audit chain verifiable and detects tampering', async () => {
      await member('alice@example.org', SP_ALICE);
      const em = h.orm.em.fork();
      expect(await verifyAuditChain(em)).toMatchObject({ ok: true });
      expect((await h.core.audit({ actor: 'ALICE@Example', action: 'SecuPass.' })).map((e) => e.action)).toEqual(['secupass.activated']);
      await em.getConnection().execute("update audit_event set action = 'forged' where seq = 2");
      expect(await verifyAuditChain(h.orm.em.fork())).toMatchObject({ ok: false, brokenAt: 2 });
    });
  });

  describe('files encrypted on the sender device', () => {
    it('stores a client-encrypted file as is, its PKESKs as wraps; releases and downloads work', async () => {
      const alice = await member('alice@example.org', SP_ALICE);
      const bob = await member('bob@example.org', 'bob secupass 1234 #');
      const d = await h.core.deliveries.create(alice, { to: ['bob@example.org', 'new2@example.org'], subject: 'E2E', level: 3 });
      const keys = await Promise.all([alice, bob].map(async (p) => openpgp.readKey({ armoredKey: (await h.core.secupass.getKey(p)).publicKey })));
      const plain = randomBytes(123_456);
      const encrypted = async (encryptionKeys: openpgp.Key[], aead = false) =>
        Buffer.from(
          (await openpgp.encrypt({
            message: await openpgp.createMessage({ binary: plain }),
            encryptionKeys,
            format: 'binary',
            ...(aead ? { sessionKey: { data: randomBytes(32), algorithm: 'aes256' as const, aeadAlgorithm: 'gcm' as const } } : {}),
          })) as Uint8Array,
        );
      const f = await h.core.deliveries.addFile(alice, d.id, 'doc.bin', Readable.from([await encrypted(keys)]), { clientEncrypted: { plaintextSize: plain.length } });
      expect(f.size).toBe(plain.length);
      // Refused: not to the owner, to a stranger, AEAD (SEIPDv2), not OpenPGP at all.
      await expectCode(h.core.deliveries.addFile(alice, d.id, 'x', Readable.from([await encrypted([keys[1] as openpgp.Key])]), { clientEncrypted: {} }), 'SEALDROP_E_WRAP_INVALID');
      const stranger = (await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: 's@example.org' }], format: 'object' })).publicKey;
      await expectCode(h.core.deliveries.addFile(alice, d.id, 'x', Readable.from([await encrypted([keys[0] as openpgp.Key, stranger])]), { clientEncrypted: {} }), 'SEALDROP_E_WRAP_INVALID');
      await expect(h.core.deliveries.addFile(alice, d.id, 'x', Readable.from([await encrypted(keys, true)]), { clientEncrypted: {} })).rejects.toThrow(/version 1/);
      await expect(h.core.deliveries.addFile(alice, d.id, 'x', Readable.from([Buffer.from('hello, not openpgp')]), { clientEncrypted: {} })).rejects.toThrow();
      const listed: string[] = [];
      for await (const k of h.blobs.list()) listed.push(k);
      expect(listed).toHaveLength(1);
      const sent = await h.core.deliveries.send(alice, d.id);
      expect(sent.recipients.map((r) => [r.email, r.state])).toEqual([
        ['bob@example.org', 'available'],
        ['new2@example.org', 'awaiting_registration'],
      ]);
      const data = await readAll((await h.core.deliveries.download(bob, d.id, f.id)).stream);
      expect((await decryptFor(bob, 'bob secupass 1234 #', data)).equals(plain)).toBe(true);
      // The owner's wrap makes a later release possible without the file.
      const newbie = await registerFromMail('new2@example.org');
      await h.core.secupass.activate(newbie, { secupass: SP_NEW });
      await h.core.deliveries.release(alice, d.id, SP_ALICE);
      const data2 = await readAll((await h.core.deliveries.download(newbie, d.id, f.id)).stream);
      expect((await decryptFor(newbie, SP_NEW, data2)).equals(plain)).toBe(true);
    });
  });
});
