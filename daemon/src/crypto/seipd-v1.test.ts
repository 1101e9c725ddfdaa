/**
 * Tests of the native SEIPDv1 encoder: byte identity with openpgp.js 6.3.2 for many sizes and
 * input chunkings, decryptability by openpgp.js and by GnuPG, option errors and back-pressure.
 */
import { execFile } from 'node:child_process';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPacketHeader, splitPkesks } from './packets.ts';
import { createSeipdV1Encryptor, SeipdV1Plaintext } from './seipd-v1.ts';
import { useNativeCfb } from './native-cfb.ts';
import { prng } from '../../test/support/prng.ts';
import type { SeipdV1Options } from './seipd-v1.ts';

const execFileAsync = promisify(execFile);

const SESSION_KEY = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
const DATE = new Date('2024-05-06T07:08:09.987Z'); // milliseconds are dropped by both sides
const FILENAME = 'report-2024.pdf';
const THREE_MIB = 3 * 1024 * 1024 + 1234;
const SIZES = [0, 1, 15, 16, 17, 511, 512, 513, 8191, 8192, 8384, 65535, 65536, 65537, THREE_MIB];

let publicKey: openpgp.PublicKey;
let privateKey: openpgp.PrivateKey;
let armoredPrivateKey: string;

beforeAll(async () => {
  const generated = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name: 'SEIPD Test', email: 'seipd@example.org' }],
    format: 'object',
  });
  publicKey = generated.publicKey;
  privateKey = generated.privateKey;
  armoredPrivateKey = privateKey.armor();
});

/** Deterministic pseudo-random plaintext (AES-CTR keystream). */
function plaintext(size: number): Buffer {
  return createCipheriv('aes-128-ctr', Buffer.alloc(16, 1), Buffer.alloc(16, 2)).update(Buffer.alloc(size));
}

function fixedChunks(data: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < data.length; offset += size) {
    chunks.push(data.subarray(offset, offset + size));
  }
  return chunks;
}

/** Random chunk sizes in [min, max]; with `empties`, also scatters empty chunks (and 0-size draws). */
function randomChunks(data: Uint8Array, seed: number, min: number, max: number, empties: boolean): Uint8Array[] {
  const random = prng(seed);
  const chunks: Uint8Array[] = [];
  let offset = 0;
  while (offset < data.length) {
    const size = min + Math.floor(random() * (max - min + 1));
    chunks.push(data.subarray(offset, offset + size));
    offset += size;
    if (empties && random() < 0.3) {
      for (let n = 1 + Math.floor(random() * 3); n > 0; n -= 1) {
        chunks.push(new Uint8Array(0));
      }
    }
  }
  return chunks;
}

interface Chunking {
  name: string;
  maxSize: number;
  split: (data: Uint8Array) => Uint8Array[];
}

const CHUNKINGS: Chunking[] = [
  { name: 'single chunk', maxSize: Infinity, split: (data) => [data] },
  { name: '64 KiB chunks', maxSize: Infinity, split: (data) => fixedChunks(data, 64 * 1024) },
  { name: '1000-byte chunks', maxSize: Infinity, split: (data) => fixedChunks(data, 1000) },
  { name: '7-byte chunks', maxSize: 65537, split: (data) => fixedChunks(data, 7) },
  { name: 'random 1..20000', maxSize: Infinity, split: (data) => randomChunks(data, 42, 1, 20_000, false) },
  { name: 'random 0..3000 with empty chunks', maxSize: Infinity, split: (data) => randomChunks(data, 7, 0, 3000, true) },
];

/** A web ReadableStream delivering exactly the given chunks (empty ones included). */
function webStream(chunks: readonly Uint8Array[]): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[index];
      index += 1;
      if (chunk === undefined) {
        controller.close();
      } else {
        controller.enqueue(chunk);
      }
    },
  });
}

async function readWebStream(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    parts.push(value);
  }
  return Buffer.concat(parts);
}

/** Whole binary message from openpgp.js for this chunk sequence. */
async function encryptWithOpenpgp(chunks: readonly Uint8Array[], filename = FILENAME): Promise<Buffer> {
  const message = await openpgp.createMessage({ binary: webStream(chunks), filename, date: DATE, format: 'binary' });
  const encrypted = await openpgp.encrypt({
    message,
    encryptionKeys: publicKey,
    sessionKey: { data: SESSION_KEY, algorithm: 'aes256', aeadAlgorithm: undefined },
    format: 'binary',
  });
  return readWebStream(encrypted);
}

/** Output of the native encoder when written the given chunks one by one. */
async function encryptNatively(chunks: readonly Uint8Array[], options: Partial<SeipdV1Options>): Promise<Buffer> {
  const encryptor = createSeipdV1Encryptor({ sessionKey: SESSION_KEY, filename: FILENAME, date: DATE, ...options });
  const parts: Buffer[] = [];
  const collected = new Promise<Buffer>((resolve, reject) => {
    encryptor.on('data', (part: Buffer) => parts.push(part));
    encryptor.on('end', () => resolve(Buffer.concat(parts)));
    encryptor.on('error', reject);
  });
  for (const chunk of chunks) {
    encryptor.write(chunk);
  }
  encryptor.end();
  return collected;
}

/** The CFB prefix used for a SEIPDv1 packet, recovered by decrypting the start of its body. */
function recoverPrefix(seipd: Uint8Array): Uint8Array {
  const header = readPacketHeader(seipd, 0);
  expect(header.tag).toBe(18);
  const body = seipd.subarray(header.headerLength);
  expect(body[0]).toBe(1); // SEIPD version
  const prefix = createDecipheriv('aes-256-cfb', SESSION_KEY, Buffer.alloc(16)).update(body.subarray(1, 19));
  expect([prefix[16], prefix[17]]).toEqual([prefix[14], prefix[15]]);
  return prefix;
}

/** Byte equality with a short message (first differing offset) instead of a megabyte diff. */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  if (Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(expected)) {
    return;
  }
  let offset = 0;
  while (offset < actual.length && offset < expected.length && actual[offset] === expected[offset]) {
    offset += 1;
  }
  throw new Error(
    `bytes differ at offset ${offset} (actual ${actual.length} bytes, expected ${expected.length}): ` +
      `actual ${Buffer.from(actual.subarray(offset, offset + 8)).toString('hex')} vs ` +
      `expected ${Buffer.from(expected.subarray(offset, offset + 8)).toString('hex')}`,
  );
}

async function decryptWithOpenpgp(message: Uint8Array): Promise<{ data: Uint8Array; filename: string }> {
  const result = await openpgp.decrypt({
    message: await openpgp.readMessage({ binaryMessage: message }),
    decryptionKeys: privateKey,
    format: 'binary',
  });
  return { data: result.data, filename: result.filename };
}

/** Runs openpgp.js and the native encoder on the same chunks; asserts identity and decryptability. */
async function checkIdentity(data: Buffer, chunks: readonly Uint8Array[], filename = FILENAME): Promise<Buffer> {
  const reference = await encryptWithOpenpgp(chunks, filename);
  const { pkesks, rest } = splitPkesks(reference);
  expect(pkesks).toHaveLength(1);
  const native = await encryptNatively(chunks, { prefix: recoverPrefix(rest), filename });
  expectSameBytes(native, rest);
  const decrypted = await decryptWithOpenpgp(Buffer.concat([pkesks[0] ?? new Uint8Array(0), native]));
  expectSameBytes(decrypted.data, data);
  return native;
}

describe('createSeipdV1Encryptor is byte-identical to openpgp.js 6.3.2', () => {
  for (const size of SIZES) {
    describe(`${size} bytes`, () => {
      const data = plaintext(size);
      for (const chunking of CHUNKINGS.filter((c) => size <= c.maxSize)) {
        it(chunking.name, async () => {
          await checkIdentity(data, chunking.split(data));
        });
      }
    });
  }

  describe('through node:crypto instead of the native addon (the fallback)', () => {
    beforeAll(() => useNativeCfb(false));
    afterAll(() => useNativeCfb(true));
    for (const size of [0, 17, 8191, 65537, THREE_MIB]) {
      it(`${size} bytes, every chunking`, async () => {
        const data = plaintext(size);
        for (const chunking of CHUNKINGS.filter((c) => size <= c.maxSize)) await checkIdentity(data, chunking.split(data));
      });
    }
  });

  it('no chunks at all (empty stream) differs from one empty chunk only by framing input, both match', async () => {
    await checkIdentity(Buffer.alloc(0), []);
    await checkIdentity(Buffer.alloc(0), [new Uint8Array(0)]);
  });

  it('empty chunks release buffered data exactly like openpgp.js', async () => {
    // 2000 + header bytes buffered -> 1024 emitted, 991 left (>= 512): an empty chunk then
    // releases another 512-byte partial chunk, so the framing differs from the same data
    // without the empty chunk.
    const data = plaintext(2100);
    const withEmpty = [data.subarray(0, 2000), new Uint8Array(0), data.subarray(2000)];
    const withoutEmpty = [data.subarray(0, 2000), data.subarray(2000)];
    const prefix = Uint8Array.from({ length: 18 }, (_, i) => (i < 16 ? i * 3 : (i - 2) * 3));
    const a = await encryptNatively(withEmpty, { prefix });
    const b = await encryptNatively(withoutEmpty, { prefix });
    expect(a.equals(b)).toBe(false);
    await checkIdentity(data, withEmpty);
    await checkIdentity(data, withoutEmpty);
  });

  it('many consecutive empty chunks and big residuals', async () => {
    const data = plaintext(300_000);
    const chunks = [data.subarray(0, 100_000), ...Array.from({ length: 12 }, () => new Uint8Array(0)), data.subarray(100_000)];
    await checkIdentity(data, chunks);
  });

  it('UTF-8 filename, and the filename survives decryption', async () => {
    const data = plaintext(1000);
    const filename = 'Überweisung – 請求書 📄.pdf';
    const native = await checkIdentity(data, [data], filename);
    const pkesk = await openpgp.encryptSessionKey({
      data: SESSION_KEY,
      algorithm: 'aes256',
      encryptionKeys: publicKey,
      format: 'binary',
    });
    const decrypted = await decryptWithOpenpgp(Buffer.concat([pkesk, native]));
    expect(decrypted.filename).toBe(filename);
  });
});

describe('createSeipdV1Encryptor options and stream behaviour', () => {
  async function pkesk(): Promise<Uint8Array> {
    return openpgp.encryptSessionKey({ data: SESSION_KEY, algorithm: 'aes256', encryptionKeys: publicKey, format: 'binary' });
  }

  it('uses a fresh random prefix by default; the result decrypts', async () => {
    const data = plaintext(5000);
    const a = await encryptNatively([data], {});
    const b = await encryptNatively([data], {});
    expect(a.equals(b)).toBe(false);
    const head = await pkesk();
    for (const blob of [a, b]) {
      expectSameBytes((await decryptWithOpenpgp(Buffer.concat([head, blob]))).data, data);
    }
  });

  it('defaults to an empty filename and the current date (whole seconds)', async () => {
    const before = Math.floor(Date.now() / 1000);
    const blob = await encryptNatively([plaintext(10)], { filename: undefined, date: undefined });
    const after = Math.floor(Date.now() / 1000);
    expectSameBytes((await decryptWithOpenpgp(Buffer.concat([await pkesk(), blob]))).data, plaintext(10));
    // Small enough for one definite-length packet: decrypt it and read the literal header.
    const outer = readPacketHeader(blob, 0);
    expect(outer.bodyLength).toBe(blob.length - outer.headerLength);
    const inner = createDecipheriv('aes-256-cfb', SESSION_KEY, Buffer.alloc(16)).update(blob.subarray(outer.headerLength + 1));
    const literal = inner.subarray(18); // after the CFB prefix
    expect(readPacketHeader(literal, 0)).toMatchObject({ tag: 11, headerLength: 2, bodyLength: 1 + 1 + 4 + 10 });
    expect([literal[2], literal[3]]).toEqual([0x62, 0]); // binary format, empty filename
    const seconds = literal.readUInt32BE(4);
    expect(seconds).toBeGreaterThanOrEqual(before);
    expect(seconds).toBeLessThanOrEqual(after);
  });

  it('truncates filenames longer than 255 UTF-8 bytes on a character boundary', async () => {
    const filename = `${'a'.repeat(254)}ééé`; // 254 + 6 bytes: cut after the 254 ASCII bytes
    const blob = await encryptNatively([plaintext(100)], { filename });
    const decrypted = await decryptWithOpenpgp(Buffer.concat([await pkesk(), blob]));
    expect(decrypted.filename).toBe('a'.repeat(254));
  });

  it('rejects bad options with clear errors', () => {
    expect(() => createSeipdV1Encryptor({ sessionKey: new Uint8Array(16) })).toThrow(/session key must be .*32 bytes.*got 16 bytes/);
    expect(() => createSeipdV1Encryptor({ sessionKey: SESSION_KEY, prefix: new Uint8Array(16) })).toThrow(/prefix must be .*18 bytes/);
    const badCheck = new Uint8Array(18);
    badCheck[17] = 1;
    expect(() => createSeipdV1Encryptor({ sessionKey: SESSION_KEY, prefix: badCheck })).toThrow(/bytes 16 and 17 must repeat/);
    expect(() => createSeipdV1Encryptor({ sessionKey: SESSION_KEY, date: new Date(Number.NaN) })).toThrow(/valid Date/);
    expect(() => createSeipdV1Encryptor({ sessionKey: SESSION_KEY, date: new Date('1960-01-01') })).toThrow(/between 1970/);
    expect(() => createSeipdV1Encryptor({ sessionKey: SESSION_KEY, date: new Date('2107-01-01') })).toThrow(/between 1970/);
  });

  it('gives the same bytes to a sink, which may overwrite each unit once it returns (the worker reuses buffers)', async () => {
    const data = plaintext(5 * 1024 * 1024 + 77);
    const prefix = recoverPrefix(await encryptNatively([], {}));
    // Chunks around the reused 1 MiB ciphertext buffer: small ones, 64 KiB, 1.5 MiB (a buffer of
    // their own), and 100 KB / 1 MB in turn (the buffer starts over while the framing still
    // holds back the end of the chunk before).
    const alternating: Buffer[] = [];
    for (let off = 0, i = 0; off < data.length; i++) {
      const n = i % 2 === 0 ? 100_000 : 1_000_000;
      alternating.push(data.subarray(off, off + n));
      off += n;
    }
    const chunkings = [randomChunks(data, 11, 0, 300_000, true), fixedChunks(data, 64 * 1024), fixedChunks(data, 1536 * 1024), randomChunks(data, 5, 1, 3000, false), alternating];
    for (const chunks of chunkings) {
      const expected = await encryptNatively(chunks, { prefix });
      const parts: Buffer[] = [];
      const encryptor = createSeipdV1Encryptor({
        sessionKey: SESSION_KEY,
        filename: FILENAME,
        date: DATE,
        prefix,
        sink: (unit) => {
          parts.push(Buffer.from(unit));
          unit.fill(0xa5);
        },
      });
      let pushed = 0;
      encryptor.on('data', (c: Buffer) => (pushed += c.length));
      const ended = new Promise((resolve, reject) => encryptor.on('end', resolve).on('error', reject));
      for (const chunk of chunks) encryptor.write(chunk);
      encryptor.end();
      await ended;
      expect(pushed, 'the readable side carries nothing').toBe(0);
      expectSameBytes(Buffer.concat(parts), expected);
    }
  });

  it('takes the MDC from a SeipdV1Plaintext run elsewhere over the same chunks: the same bytes', async () => {
    const data = plaintext(THREE_MIB);
    const chunks = randomChunks(data, 7, 1, 300_000, true);
    const prefix = recoverPrefix(await encryptNatively([], {}));
    const expected = await encryptNatively(chunks, { prefix });
    // The hashing side sees each chunk before it "moves" (is overwritten here), like the pool's main thread.
    const side = new SeipdV1Plaintext({ filename: FILENAME, date: DATE, prefix }, true);
    side.begin();
    const encryptor = createSeipdV1Encryptor({ sessionKey: SESSION_KEY, filename: FILENAME, date: DATE, prefix, externalMdc: true });
    const parts: Buffer[] = [];
    encryptor.on('data', (part: Buffer) => parts.push(part));
    const ended = new Promise((resolve, reject) => encryptor.on('end', resolve).on('error', reject));
    for (const chunk of chunks) {
      const copy = Buffer.from(chunk);
      side.push(copy);
      side.detach();
      encryptor.write(Buffer.from(chunk));
      copy.fill(0);
    }
    side.end();
    encryptor.endWithMdc(side.digest());
    await ended;
    expectSameBytes(Buffer.concat(parts), expected);
    // Without the value, or with one of the wrong size: an error, not a packet without integrity.
    const missing = createSeipdV1Encryptor({ sessionKey: SESSION_KEY, externalMdc: true });
    await expect(pipeline(Readable.from([data.subarray(0, 1000)]), missing, new Writable({ write: (_c, _e, cb) => cb() }))).rejects.toThrow(/without the MDC value/);
    const wrong = createSeipdV1Encryptor({ sessionKey: SESSION_KEY, externalMdc: true });
    const failed = new Promise<Error>((resolve) => wrong.on('error', resolve));
    wrong.resume();
    wrong.endWithMdc(new Uint8Array(19));
    expect((await failed).message).toMatch(/20-byte SHA-1/);
    expect(() => new SeipdV1Plaintext({}, false).digest()).toThrow(/does not hash/);
  });

  it('surfaces errors of a failing source as a stream error', async () => {
    const source = new Readable({
      read() {
        this.destroy(new Error('source broke'));
      },
    });
    const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    await expect(pipeline(source, createSeipdV1Encryptor({ sessionKey: SESSION_KEY }), sink)).rejects.toThrow('source broke');
  });

  it('respects back-pressure and keeps its buffers small', async () => {
    const small = plaintext(1000);
    const encryptor = createSeipdV1Encryptor({ sessionKey: SESSION_KEY });
    // Nobody reads: write() must report back-pressure once the (16 KiB) buffers are full.
    let written = small.length;
    while (encryptor.write(small)) {
      written += small.length;
      expect(written).toBeLessThan(256 * 1024);
    }
    expect(written).toBeGreaterThan(16 * 1024);
    encryptor.destroy();

    const chunk = plaintext(64 * 1024);

    // Slow consumer over 32 MiB: the encoder's queues stay bounded.
    const total = 32 * 1024 * 1024;
    const piped = createSeipdV1Encryptor({ sessionKey: SESSION_KEY });
    let maxQueued = 0;
    let received = 0;
    async function* source(): AsyncGenerator<Buffer> {
      for (let sent = 0; sent < total; sent += chunk.length) {
        maxQueued = Math.max(maxQueued, piped.readableLength + piped.writableLength);
        yield chunk;
      }
    }
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(part: Buffer, _encoding, callback) {
        received += part.length;
        setImmediate(callback);
      },
    });
    await pipeline(Readable.from(source(), { objectMode: false }), piped, sink);
    expect(received).toBeGreaterThan(total);
    expect(maxQueued).toBeLessThan(512 * 1024);
  });
});

describe('GnuPG decrypts PKESK || native SEIPD', () => {
  let home = '';

  async function gpg(args: string[]): Promise<void> {
    await execFileAsync('gpg', ['--homedir', home, '--batch', '--yes', '--no-tty', ...args], {
      env: { ...process.env, GNUPGHOME: home },
      maxBuffer: 16 * 1024 * 1024,
    });
  }

  beforeAll(async () => {
    try {
      await execFileAsync('gpg', ['--version']);
    } catch (error) {
      throw new Error(`gpg is required for these tests (install the Debian package gnupg): ${(error as Error).message}`);
    }
    home = await mkdtemp(join(tmpdir(), 'seipd-gpg-'), { encoding: 'utf8' });
    await writeFile(join(home, 'secret.asc'), armoredPrivateKey, { mode: 0o600 });
    await gpg(['--import', join(home, 'secret.asc')]);
  });

  afterAll(async () => {
    if (home !== '') {
      await execFileAsync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent'], {
        env: { ...process.env, GNUPGHOME: home },
      }).catch(() => undefined);
      await rm(home, { recursive: true, force: true });
    }
  });

  for (const size of [0, 70_000, THREE_MIB]) {
    it(`${size} bytes`, async () => {
      const data = plaintext(size);
      const pkesk = await openpgp.encryptSessionKey({
        data: SESSION_KEY,
        algorithm: 'aes256',
        encryptionKeys: publicKey,
        format: 'binary',
      });
      const blob = await encryptNatively(fixedChunks(data, 10_000), {});
      const input = join(home, `in-${size}.gpg`);
      const output = join(home, `out-${size}.bin`);
      await writeFile(input, Buffer.concat([pkesk, blob]));
      await gpg(['--decrypt', '--output', output, input]);
      expectSameBytes(await readFile(output), data);
    });
  }
});
