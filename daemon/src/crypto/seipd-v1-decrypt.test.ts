/**
 * Tests of the native SEIPDv1 decoder: it returns the literal data of what the native encoder
 * and openpgp.js write, for many sizes and chunkings, and refuses every modification, a
 * truncation, trailing bytes, the wrong key and packets it does not handle.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';
import { splitPkesks } from './packets.ts';
import { createSeipdV1Decryptor, SeipdV1DecryptError } from './seipd-v1-decrypt.ts';
import { createSeipdV1Encryptor } from './seipd-v1.ts';

const KEY = Uint8Array.from({ length: 32 }, (_, i) => (i * 29 + 5) & 0xff);

function plaintext(size: number): Buffer {
  return createCipheriv('aes-128-ctr', Buffer.alloc(16, 3), Buffer.alloc(16, 4)).update(Buffer.alloc(size));
}

/** Cuts `data` into pieces of pseudo-random lengths in [1, max] (seeded). */
function cut(data: Buffer, seed: number, max: number): Buffer[] {
  let s = seed;
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; ) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (s % max);
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return out;
}

async function encrypt(data: Buffer, chunks: Buffer[], filename = 'f.bin'): Promise<Buffer> {
  const enc = createSeipdV1Encryptor({ sessionKey: KEY, filename });
  const parts: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    enc.on('data', (p: Buffer) => parts.push(p));
    enc.on('end', resolve);
    enc.on('error', reject);
  });
  for (const c of chunks) enc.write(c);
  enc.end();
  await done;
  expect(Buffer.concat(chunks).equals(data)).toBe(true);
  return Buffer.concat(parts);
}

/** Runs the decoder over `chunks`; the plaintext, or the error it ended with. */
async function decrypt(chunks: Buffer[], key: Uint8Array = KEY): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of Readable.from(chunks, { objectMode: false }).pipe(createSeipdV1Decryptor(key))) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

async function decryptFails(bytes: Buffer, key: Uint8Array = KEY): Promise<string> {
  try {
    await decrypt(cut(bytes, 9, 70_000), key);
  } catch (err) {
    expect(err).toBeInstanceOf(SeipdV1DecryptError);
    return (err as Error).message;
  }
  throw new Error('decryption did not fail');
}

describe('SeipdV1Decryptor', () => {
  it('returns the plaintext of what the native encoder writes, for any sizes and chunkings on both sides', async () => {
    for (const size of [0, 1, 15, 16, 17, 21, 22, 23, 511, 512, 513, 8191, 8192, 65535, 65536, 65537, 3 * 1024 * 1024 + 7]) {
      const data = plaintext(size);
      for (const [i, encChunks] of [[data], cut(data, size + 1, 20_000), cut(data, size + 2, 300)].entries()) {
        const sealed = await encrypt(data, encChunks, i === 1 ? 'ünïcödé name ✓.bin' : 'f.bin');
        for (const decChunks of [[sealed], cut(sealed, size + 3, 70_000), ...(size < 70_000 ? [cut(sealed, size + 4, 5)] : [])]) {
          const out = await decrypt(decChunks);
          expect(out.length, `size ${size}`).toBe(size);
          expect(out.equals(data), `size ${size}, ${encChunks.length} in, ${decChunks.length} out`).toBe(true);
        }
      }
    }
  });

  it("reads openpgp.js 6's SEIPDv1 packet (after the PKESK) for the same session key", async () => {
    const { publicKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ email: 'd@example.org' }], format: 'object' });
    const data = plaintext(200_003);
    const message = await openpgp.createMessage({ binary: data, filename: 'x.bin', format: 'binary' });
    const encrypted = await openpgp.encrypt({ message, encryptionKeys: publicKey, sessionKey: { data: KEY, algorithm: 'aes256', aeadAlgorithm: undefined }, format: 'binary' });
    const { rest } = splitPkesks(encrypted as Uint8Array);
    expect((await decrypt([Buffer.from(rest)])).equals(data)).toBe(true);
  });

  it('gives each input chunk back once decrypted, never reading it again, and verifies without output in discard mode', async () => {
    const data = plaintext(1_000_003);
    const sealed = await encrypt(data, cut(data, 11, 50_000));
    const chunks = cut(sealed, 12, 70_000).map((c) => Buffer.from(c));
    const given = new Set<Buffer>();
    const recycle = (chunk: Buffer) => {
      expect(given.has(chunk)).toBe(false);
      given.add(chunk);
      chunk.fill(0xaa); // the pool lends it out again at once
    };
    const parts: Buffer[] = [];
    for await (const p of Readable.from(chunks).pipe(createSeipdV1Decryptor(KEY, { recycle }))) parts.push(Buffer.from(p as Buffer));
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(given.size).toBe(chunks.length);

    const verifier = createSeipdV1Decryptor(KEY, { discard: true });
    let pushed = 0;
    for await (const p of Readable.from(cut(sealed, 13, 70_000)).pipe(verifier)) pushed += (p as Buffer).length;
    expect([pushed, verifier.literalBytes]).toEqual([0, data.length]);
    // The reused plaintext buffer is wiped once the check is done.
    const scratch = (verifier as unknown as { scratch: Buffer }).scratch;
    expect(scratch.length).toBeGreaterThan(0);
    expect(scratch.every((b) => b === 0)).toBe(true);
    const bad = Buffer.from(sealed);
    bad[500_000] = (bad[500_000] as number) ^ 4;
    await expect(async () => {
      for await (const _ of Readable.from([bad]).pipe(createSeipdV1Decryptor(KEY, { discard: true }))) void _;
    }).rejects.toThrow(/MDC does not match/);
  });

  let sealed: Buffer;
  const data = plaintext(300_000);
  beforeAll(async () => {
    sealed = await encrypt(data, cut(data, 5, 40_000));
  });

  it('refuses a flipped bit anywhere: headers, prefix, data, MDC', async () => {
    const positions = [0, 1, 3, 4, 10, 20, 25, 40, 1000, 150_000, sealed.length - 30, sealed.length - 22, sealed.length - 21, sealed.length - 1];
    for (const at of positions) {
      const bad = Buffer.from(sealed);
      bad[at] = (bad[at] as number) ^ 0x10;
      await expect(decryptFails(bad), `bit flipped at ${at}`).resolves.toMatch(/./);
    }
    expect(await decryptFails(Object.assign(Buffer.from(sealed), { [150_000]: (sealed[150_000] as number) ^ 1 }))).toMatch(/MDC does not match/);
  });

  it('refuses a truncated packet, trailing bytes, an empty input and the wrong key', async () => {
    for (const len of [0, 1, 2, 3, 30, 1000, 150_000, sealed.length - 22, sealed.length - 1]) {
      await expect(decryptFails(sealed.subarray(0, len)), `truncated to ${len}`).resolves.toMatch(/truncated|too short|no MDC/);
    }
    expect(await decryptFails(Buffer.concat([sealed, Buffer.of(0)]))).toMatch(/after the SEIPD packet/);
    const other = Uint8Array.from(KEY, (b, i) => (i === 0 ? b ^ 1 : b));
    expect(await decryptFails(sealed, other)).toMatch(/prefix check failed|MDC/);
    expect(() => createSeipdV1Decryptor(new Uint8Array(16))).toThrow(/32 bytes/);
  });

  it('refuses a packet other than literal data inside (a compressed packet)', async () => {
    // A well-formed SEIPDv1 packet whose plaintext is prefix + a compressed-data packet + MDC.
    const prefix = randomBytes(18);
    prefix[16] = prefix[14] as number;
    prefix[17] = prefix[15] as number;
    const inner = Buffer.from([0xc8, 0x03, 0x00, 0x41, 0x42]); // tag 8, length 3, algorithm 0
    const hashed = Buffer.concat([prefix, inner, Buffer.of(0xd3, 0x14)]);
    const { createHash } = await import('node:crypto');
    const plain = Buffer.concat([hashed, createHash('sha1').update(hashed).digest()]);
    const body = Buffer.concat([Buffer.of(1), createCipheriv('aes-256-cfb', KEY, Buffer.alloc(16)).update(plain)]);
    const packet = Buffer.concat([Buffer.of(0xd2, body.length), body]);
    expect(await decryptFails(packet)).toMatch(/expected tag octet 0xcb, found 0xc8/);
  });
});
