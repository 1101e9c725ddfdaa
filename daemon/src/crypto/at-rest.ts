/**
 * Server-side encryption at rest for what the server may read: the key-encryption key (KEK)
 * from a secret file outside the data folder, per-delivery keys wrapped under it, small sealed
 * values (level 1-3 messages, outbox payloads), and levels 1/2 file contents as SEIPDv2
 * (AES-256-GCM, integrity checked chunk by chunk on the way out).
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { pipeline as pipelinePromise } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import * as openpgp from 'openpgp';
import { fail } from '../core/errors.ts';
import { recyclerOf } from '../util/recycle.ts';
import { createSeipdV1Decryptor } from './seipd-v1-decrypt.ts';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Purposes with their own subkey derived from the KEK. */
export type SealPurpose = 'delivery-key' | 'outbox' | 'message' | 'csrf' | 'readback' | 'auth-cache';

/** The key-encryption key and the subkeys derived from it. */
export class Kek {
  private readonly subkeys = new Map<SealPurpose, Buffer>();

  private constructor(private readonly master: Buffer) {}

  /** A KEK from 32 raw bytes (tests). */
  static fromBytes(bytes: Buffer): Kek {
    if (bytes.length !== 32) throw new Error('a key-encryption key has 32 bytes');
    return new Kek(Buffer.from(bytes));
  }

  /**
   * Reads the KEK file (64 hex digits). If it does not exist, generates one (mode 0600, folder
   * 0700) and calls `onGenerated` so the caller can warn: losing it loses levels 1/2.
   */
  static async load(file: string, onGenerated: (file: string) => void): Promise<Kek> {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read key-encryption key ${file}: ${(err as Error).message}`);
      await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      const fresh = randomBytes(32).toString('hex');
      try {
        await fs.writeFile(file, `${fresh}\n`, { mode: 0o600, flag: 'wx' });
        onGenerated(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      text = await fs.readFile(file, 'utf8');
    }
    const hex = text.trim();
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new Error(`key-encryption key ${file} must hold 64 hex digits`);
    return new Kek(Buffer.from(hex, 'hex'));
  }

  private subkey(purpose: SealPurpose): Buffer {
    let key = this.subkeys.get(purpose);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.master, Buffer.alloc(0), `sealdrop ${purpose} v1`, 32));
      this.subkeys.set(purpose, key);
    }
    return key;
  }

  /** HMAC-SHA256 of `data` under the purpose's subkey, base64url (e.g. CSRF tokens bound to a session). */
  mac(purpose: SealPurpose, data: string): string {
    return createHmac('sha256', this.subkey(purpose)).update(data, 'utf8').digest('base64url');
  }

  /** Encrypts a small value with AES-256-GCM; `context` (e.g. a row id) is bound as associated data. */
  seal(purpose: SealPurpose, plaintext: Uint8Array, context: string): Buffer {
    return sealWith(this.subkey(purpose), plaintext, `${purpose}:${context}`);
  }

  /** Decrypts what seal() produced for the same purpose and context; throws on any tampering. */
  open(purpose: SealPurpose, sealed: Uint8Array, context: string): Buffer {
    return openWith(this.subkey(purpose), sealed, `${purpose}:${context}`);
  }
}

/** AES-256-GCM: version || iv || tag || ciphertext, with `aad` authenticated. */
export function sealWith(key: Uint8Array, plaintext: Uint8Array, aad: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), ct]);
}

/** Reverses sealWith; throws SEALDROP_E_INTERNAL if the value was altered or the key is wrong. */
export function openWith(key: Uint8Array, sealed: Uint8Array, aad: string): Buffer {
  const buf = Buffer.from(sealed);
  if (buf.length < 1 + IV_BYTES + TAG_BYTES || buf[0] !== VERSION) throw fail('SEALDROP_E_INTERNAL', 'sealed value is malformed');
  const decipher = createDecipheriv('aes-256-gcm', key, buf.subarray(1, 1 + IV_BYTES));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(buf.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(buf.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
  } catch {
    throw fail('SEALDROP_E_INTERNAL', 'sealed value failed its integrity check (wrong key-encryption key?)');
  }
}

/** A fresh 32-byte key (per-delivery key, session key). */
export function newKey(): Buffer {
  return randomBytes(32);
}

function packetList<T extends openpgp.AnyPacket>(packet: T): openpgp.PacketList<T> {
  const list = new openpgp.PacketList<T>();
  list.push(packet);
  return list;
}

const AEAD_CHUNK_SIZE_BYTE = 16; // 2^(16+6) = 4 MiB chunks

/**
 * Encrypts a plaintext stream as one SEIPDv2 packet (AES-256-GCM, 4 MiB chunks) under `key`.
 * The output is the packet alone (no session-key packet): the key lives wrapped under the KEK.
 */
export async function encryptSeipdV2(plaintext: Readable, key: Uint8Array, filename = ''): Promise<Readable> {
  // The packet classes' streaming API is public in openpgp.js but only partly typed.
  const Literal = openpgp.LiteralDataPacket as unknown as new (date: Date) => LiteralPacket;
  const Seipd = openpgp.SymEncryptedIntegrityProtectedDataPacket as unknown as { fromObject(o: { version: 2; aeadAlgorithm: number }): SeipdPacket };
  const literal = new Literal(new Date());
  literal.setFilename(filename);
  literal.setBytes(Readable.toWeb(plaintext) as unknown as ReadableStream<Uint8Array>, openpgp.enums.literal.binary);
  const seipd = Seipd.fromObject({ version: 2, aeadAlgorithm: openpgp.enums.aead.gcm });
  seipd.packets = packetList(literal as unknown as openpgp.AnyPacket);
  await seipd.encrypt(openpgp.enums.symmetric.aes256, key, { ...openpgp.config, aeadChunkSizeByte: AEAD_CHUNK_SIZE_BYTE });
  const out = packetList(seipd as unknown as openpgp.AnyPacket).write() as unknown as WebReadableStream<Uint8Array>;
  return Readable.fromWeb(out);
}

interface LiteralPacket {
  setFilename(name: string): void;
  setBytes(bytes: ReadableStream<Uint8Array>, format: number): void;
}

interface SeipdPacket {
  packets: openpgp.PacketList<openpgp.AnyPacket>;
  encrypt(algorithm: number, key: Uint8Array, config: openpgp.Config): Promise<void>;
}

/**
 * Decrypts a SEIPDv2 packet stream under `key`. Chunks are released only after their GCM tag
 * verified; a truncated or altered stream errors (the caller must treat output as void then).
 */
export async function decryptSeipdV2(ciphertext: Readable, key: Uint8Array): Promise<Readable> {
  return decryptWithSessionKey(ciphertext, key);
}

/** Streams the plaintext of a SEIPDv2 (AES-256) data packet; openpgp.js checks each chunk's tag. */
async function decryptWithSessionKey(ciphertext: Readable, key: Uint8Array): Promise<Readable> {
  const message = await openpgp.readMessage({ binaryMessage: Readable.toWeb(ciphertext) as unknown as ReadableStream<Uint8Array> });
  const { data } = await openpgp.decrypt({ message, sessionKeys: { data: key, algorithm: 'aes256' }, format: 'binary' });
  return Readable.fromWeb(data as unknown as WebReadableStream<Uint8Array>);
}

/**
 * Decrypts a SEIPDv1 packet stream of the native encoder under its session key, streaming
 * (seipd-v1-decrypt.ts: ECB + XOR and SHA-1 in this thread, several times openpgp.js's speed).
 * The MDC is checked only at the end (a failed one errors the stream), so a caller that
 * publishes the output must have verified it whole before (verifySeipdV1; Deliveries.readBack
 * does). The key is copied into the cipher at once: the caller may wipe it when this returns.
 */
export async function decryptSeipdV1(ciphertext: Readable, sessionKey: Uint8Array): Promise<Readable> {
  const decryptor = createSeipdV1Decryptor(sessionKey, { recycle: recyclerOf(ciphertext) });
  pipeline(ciphertext, decryptor, () => {
    // errors reach the reader through the decryptor, which pipeline destroys with them
  });
  return decryptor;
}

/**
 * Decrypts a SEIPDv1 packet stream whole without keeping the plaintext (one reused buffer)
 * and checks its MDC; resolves to the number of literal data bytes, rejects with the reason
 * if the packet is altered, truncated or not for this key.
 */
export async function verifySeipdV1(ciphertext: Readable, sessionKey: Uint8Array): Promise<number> {
  const decryptor = createSeipdV1Decryptor(sessionKey, { recycle: recyclerOf(ciphertext), discard: true });
  await pipelinePromise(ciphertext, decryptor);
  return decryptor.literalBytes;
}
