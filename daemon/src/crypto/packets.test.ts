/**
 * Tests of the OpenPGP packet helpers: header parsing (old and new formats, every length
 * encoding), PKESK splitting with marker packets, and PKESK parsing on openpgp.js and GnuPG output.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenPgpPacketError, parsePkesk, readPacketHeader, splitPkesks } from './packets.ts';
import type { PacketHeader } from './packets.ts';
import { encodeSimpleLength } from './partial-length.ts';

const execFileAsync = promisify(execFile);

const SESSION_KEY = new Uint8Array(32).fill(9);
const MARKER_NEW = Uint8Array.of(0xca, 0x03, 0x50, 0x47, 0x50); // tag 10, new format, "PGP"
const MARKER_OLD = Uint8Array.of(0xa8, 0x03, 0x50, 0x47, 0x50); // tag 10, old format, "PGP"

let publicKey: openpgp.PublicKey;
let secondKey: openpgp.PublicKey;
let subkeyId = '';

beforeAll(async () => {
  const keys = await Promise.all(
    ['one', 'two'].map((name) =>
      openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name, email: `${name}@example.org` }], format: 'object' }),
    ),
  );
  publicKey = keys[0]?.publicKey as openpgp.PublicKey;
  secondKey = keys[1]?.publicKey as openpgp.PublicKey;
  subkeyId = (await publicKey.getEncryptionKey()).getKeyID().toHex();
});

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function header(buf: Uint8Array, offset = 0): PacketHeader {
  return readPacketHeader(buf, offset);
}

async function encryptedSessionKey(keys: openpgp.PublicKey[], wildcard = false): Promise<Uint8Array> {
  return openpgp.encryptSessionKey({ data: SESSION_KEY, algorithm: 'aes256', encryptionKeys: keys, wildcard, format: 'binary' });
}

describe('readPacketHeader', () => {
  it('old format, one-octet length (gpg-style 0x84 PKESK)', () => {
    expect(header(bytes(0x84, 0x5e))).toEqual({ tag: 1, headerLength: 2, bodyLength: 94, newFormat: false });
  });

  it('old format, two-octet length', () => {
    expect(header(bytes(0x85, 0x01, 0x0c))).toEqual({ tag: 1, headerLength: 3, bodyLength: 268, newFormat: false });
  });

  it('old format, four-octet length', () => {
    expect(header(bytes(0xae, 0x80, 0x00, 0x00, 0x01))).toEqual({ tag: 11, headerLength: 5, bodyLength: 0x80000001, newFormat: false });
  });

  it('old format, indeterminate length', () => {
    expect(header(bytes(0xa3))).toEqual({ tag: 8, headerLength: 1, bodyLength: 'indeterminate', newFormat: false });
  });

  it('old format covers tags up to 15', () => {
    expect(header(bytes(0xbc, 0x00)).tag).toBe(15);
  });

  it('new format, one-octet lengths', () => {
    expect(header(bytes(0xc1, 0x00))).toEqual({ tag: 1, headerLength: 2, bodyLength: 0, newFormat: true });
    expect(header(bytes(0xc1, 0xbf))).toEqual({ tag: 1, headerLength: 2, bodyLength: 191, newFormat: true });
  });

  it('new format, two-octet lengths', () => {
    expect(header(bytes(0xc1, 0xc0, 0x00))).toEqual({ tag: 1, headerLength: 3, bodyLength: 192, newFormat: true });
    expect(header(bytes(0xd2, 0xdf, 0xff))).toEqual({ tag: 18, headerLength: 3, bodyLength: 8383, newFormat: true });
  });

  it('new format, five-octet lengths', () => {
    expect(header(bytes(0xd2, 0xff, 0x00, 0x00, 0x20, 0xc0))).toEqual({ tag: 18, headerLength: 6, bodyLength: 8384, newFormat: true });
    expect(header(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff))).toEqual({ tag: 63, headerLength: 6, bodyLength: 0xffffffff, newFormat: true });
  });

  it('new format, partial lengths', () => {
    expect(header(bytes(0xd2, 0xe9))).toEqual({ tag: 18, headerLength: 2, bodyLength: 'partial', partialFirstLength: 512, newFormat: true });
    expect(header(bytes(0xcb, 0xe0)).partialFirstLength).toBe(1);
    expect(header(bytes(0xcb, 0xfe)).partialFirstLength).toBe(2 ** 30);
  });

  it('reads at an offset', () => {
    expect(header(bytes(0x00, 0x00, 0x84, 0x5e), 2)).toEqual({ tag: 1, headerLength: 2, bodyLength: 94, newFormat: false });
  });

  it('round-trips every length encoding openpgp.js writes', () => {
    const lengths = [0, 1, 191, 192, 193, 1000, 8383, 8384, 8385, 65535, 65536, 2 ** 31, 2 ** 32 - 1];
    for (let length = 0; length < 9000; length += 1) {
      lengths.push(length);
    }
    for (const length of lengths) {
      const buf = Uint8Array.from([0xcb, ...encodeSimpleLength(length)]);
      const parsed = header(buf);
      expect(parsed.bodyLength).toBe(length);
      expect(parsed.headerLength).toBe(buf.length);
    }
  });

  it('rejects garbage and truncated headers with clear errors', () => {
    expect(() => header(bytes(0x00, 0x05))).toThrow(/lacks bit 7/);
    expect(() => header(bytes(0x7f))).toThrow(OpenPgpPacketError);
    expect(() => header(bytes(0x80, 0x01))).toThrow(/reserved packet tag 0/);
    expect(() => header(bytes(0xc0, 0x01))).toThrow(/reserved packet tag 0/);
    expect(() => header(bytes())).toThrow(/truncated/);
    expect(() => header(bytes(0x84))).toThrow(/truncated/);
    expect(() => header(bytes(0x85, 0x01))).toThrow(/truncated/);
    expect(() => header(bytes(0x86, 0x00, 0x00, 0x01))).toThrow(/truncated/);
    expect(() => header(bytes(0xc1))).toThrow(/truncated/);
    expect(() => header(bytes(0xc1, 0xc5))).toThrow(/truncated/);
    expect(() => header(bytes(0xc1, 0xff, 0x00, 0x00, 0x01))).toThrow(/truncated/);
    expect(() => header(bytes(0x84, 0x01), 2)).toThrow(/truncated/);
    expect(() => header(bytes(0x84, 0x01), -1)).toThrow(RangeError);
  });
});

describe('splitPkesks and parsePkesk on openpgp.js output', () => {
  it('splits encryptSessionKey output into its PKESK packets', async () => {
    const single = await encryptedSessionKey([publicKey]);
    const one = splitPkesks(single);
    expect(one.pkesks).toHaveLength(1);
    expect(one.rest).toHaveLength(0);
    expect(Buffer.from(one.pkesks[0] ?? []).equals(single)).toBe(true);

    const double = await encryptedSessionKey([publicKey, secondKey]);
    const two = splitPkesks(double);
    expect(two.pkesks).toHaveLength(2);
    expect(Buffer.concat(two.pkesks).equals(double)).toBe(true);
    expect(two.pkesks.map((p) => parsePkesk(p).keyId)).toEqual([
      subkeyId,
      (await secondKey.getEncryptionKey()).getKeyID().toHex(),
    ]);
  });

  it('parsePkesk reads the recipient subkey ID and algorithm', async () => {
    const { pkesks } = splitPkesks(await encryptedSessionKey([publicKey]));
    expect(parsePkesk(pkesks[0] ?? new Uint8Array(0))).toEqual({ version: 3, keyId: subkeyId, algorithm: 18 });
    expect(subkeyId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('parsePkesk reports the wildcard key ID', async () => {
    const { pkesks } = splitPkesks(await encryptedSessionKey([publicKey], true));
    expect(parsePkesk(pkesks[0] ?? new Uint8Array(0)).keyId).toBe('0000000000000000');
  });

  it('returns the rest of a whole message from the first non-PKESK packet', async () => {
    const message = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: new Uint8Array(2000).fill(1) }),
      encryptionKeys: publicKey,
      format: 'binary',
    });
    const { pkesks, rest } = splitPkesks(message);
    expect(pkesks).toHaveLength(1);
    expect(readPacketHeader(rest, 0).tag).toBe(18);
    expect(pkesks[0]?.length).toBe(message.length - rest.length);
    // Only the first bytes of the message: works as long as the PKESKs are complete.
    const head = message.subarray(0, (pkesks[0]?.length ?? 0) + 1);
    expect(splitPkesks(head).rest).toEqual(bytes(0xd2));
  });

  it('skips marker packets (old and new format) before and between PKESKs', async () => {
    const a = await encryptedSessionKey([publicKey]);
    const b = await encryptedSessionKey([secondKey]);
    const seipdStart = bytes(0xd2, 0xe9, 0x01);
    const { pkesks, rest } = splitPkesks(Buffer.concat([MARKER_OLD, a, MARKER_NEW, b, seipdStart]));
    expect(pkesks.map((p) => Buffer.from(p).toString('hex'))).toEqual([Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex')]);
    expect(new Uint8Array(rest)).toEqual(seipdStart);
    expect(splitPkesks(MARKER_NEW)).toEqual({ pkesks: [], rest: new Uint8Array(0) });
  });

  it('returns copies of the PKESKs', async () => {
    const input = Buffer.from(await encryptedSessionKey([publicKey]));
    const { pkesks } = splitPkesks(input);
    input.fill(0);
    expect(parsePkesk(pkesks[0] ?? new Uint8Array(0)).keyId).toBe(subkeyId);
  });

  it('handles empty input and input without PKESKs', () => {
    expect(splitPkesks(new Uint8Array(0))).toEqual({ pkesks: [], rest: new Uint8Array(0) });
    expect(splitPkesks(bytes(0xd2, 0xe9)).pkesks).toHaveLength(0);
  });

  it('rejects garbage and truncated PKESK or marker packets', async () => {
    const pkesk = await encryptedSessionKey([publicKey]);
    expect(() => splitPkesks(bytes(0x00, 0x01, 0x02))).toThrow(/lacks bit 7/);
    expect(() => splitPkesks(Buffer.concat([pkesk, bytes(0x42)]))).toThrow(/offset 96.*lacks bit 7/);
    expect(() => splitPkesks(pkesk.subarray(0, pkesk.length - 1))).toThrow(/truncated PKESK packet/);
    expect(() => splitPkesks(pkesk.subarray(0, 1))).toThrow(/truncated/);
    expect(() => splitPkesks(MARKER_NEW.subarray(0, 4))).toThrow(/truncated marker packet/);
    expect(() => splitPkesks(bytes(0xc1, 0xe9, 0x03))).toThrow(/no definite length \(partial\)/);
    expect(() => splitPkesks(bytes(0x87, 0x03))).toThrow(/no definite length \(indeterminate\)/);
  });

  it('parsePkesk rejects other packets, truncation, trailing data and v6', async () => {
    const pkesk = await encryptedSessionKey([publicKey]);
    expect(() => parsePkesk(MARKER_NEW)).toThrow(/expected a PKESK packet \(tag 1\), got tag 10/);
    expect(() => parsePkesk(pkesk.subarray(0, pkesk.length - 1))).toThrow(/truncated PKESK/);
    expect(() => parsePkesk(Buffer.concat([pkesk, bytes(0)]))).toThrow(/1 trailing bytes/);
    const v6 = Uint8Array.from(pkesk);
    v6[2] = 6; // version octet after the two-octet header
    expect(() => parsePkesk(v6)).toThrow(/unsupported PKESK version 6/);
    expect(() => parsePkesk(bytes(0xc1, 0x00))).toThrow(/empty PKESK packet body/);
    expect(() => parsePkesk(bytes(0xc1, 0x0a, 3, 1, 2, 3, 4, 5, 6, 7, 8, 18))).toThrow(/truncated v3 PKESK/);
    expect(() => parsePkesk(bytes(0xc1, 0xe9))).toThrow(/no definite length/);
    expect(() => parsePkesk(bytes(0x13, 0x37))).toThrow(/lacks bit 7/);
  });
});

describe('splitPkesks and parsePkesk on GnuPG output', () => {
  let home = '';

  beforeAll(async () => {
    try {
      await execFileAsync('gpg', ['--version']);
    } catch (error) {
      throw new Error(`gpg is required for these tests (install the Debian package gnupg): ${(error as Error).message}`);
    }
    home = await mkdtemp(join(tmpdir(), 'packets-gpg-'), { encoding: 'utf8' });
  });

  afterAll(async () => {
    if (home !== '') {
      await execFileAsync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent'], {
        env: { ...process.env, GNUPGHOME: home },
      }).catch(() => undefined);
      await rm(home, { recursive: true, force: true });
    }
  });

  it('reads the old-format 0x84 PKESK header gpg writes', async () => {
    await writeFile(join(home, 'recipient.asc'), publicKey.armor());
    await writeFile(join(home, 'plain.txt'), 'hello from gpg\n');
    await execFileAsync(
      'gpg',
      ['--homedir', home, '--batch', '--yes', '--no-tty', '--trust-model', 'always', '--recipient-file', join(home, 'recipient.asc'),
        '--output', join(home, 'message.gpg'), '--encrypt', join(home, 'plain.txt')],
      { env: { ...process.env, GNUPGHOME: home } },
    );
    const message = await readFile(join(home, 'message.gpg'));
    expect(message[0]).toBe(0x84);
    const { pkesks, rest } = splitPkesks(message);
    expect(pkesks).toHaveLength(1);
    const pkeskHeader = readPacketHeader(pkesks[0] ?? new Uint8Array(0), 0);
    expect(pkeskHeader).toMatchObject({ tag: 1, headerLength: 2, newFormat: false });
    expect(parsePkesk(pkesks[0] ?? new Uint8Array(0))).toEqual({ version: 3, keyId: subkeyId, algorithm: 18 });
    expect(readPacketHeader(rest, 0).tag).toBe(18);
  });
});
