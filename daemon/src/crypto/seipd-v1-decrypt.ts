/**
 * Native (node:crypto) streaming decoder for the SEIPDv1 packets that {@link createSeipdV1Encryptor}
 * writes: tag 18, version 1, AES-256-CFB with a zero IV, an 18-byte prefix whose last two bytes
 * repeat the two before, one literal data packet (tag 11), and the MDC packet (tag 19: 0xD3 0x14
 * and the SHA-1 of everything before it in the plaintext, prefix included).
 *
 * It replaces openpgp.js (~120 MB/s here) where the daemon decrypts its own level-3 blobs (the
 * read-back of a sender's unsent file): CFB decryption through ECB + XOR and the SHA-1 run at
 * several hundred MB/s. It streams the literal data as it decrypts, so the MDC — checked at the
 * end, in constant time — fails only the stream's end: a caller that publishes the output must
 * have run the whole stream once before (Deliveries.readBack does). Anything else — another
 * packet, old-format headers, a compressed packet, bytes after the packet, a truncated one — is
 * refused with an error, never guessed at.
 */
import { createHash, timingSafeEqual, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { createAes256CfbDecryptor, type StreamDecryptor } from './cfb.ts';

const BLOCK_SIZE = 16;
const PREFIX_SIZE = BLOCK_SIZE + 2;
const SEIPD_TAG_OCTET = 0xc0 | 18;
const LITERAL_TAG_OCTET = 0xc0 | 11;
const MDC_HEADER_0 = 0xd3;
const MDC_HEADER_1 = 0x14;
const MDC_SIZE = 20;
/** The MDC packet at the end of the plaintext: its 2 header bytes and the SHA-1 value. */
const MDC_PACKET_SIZE = 2 + MDC_SIZE;
const EMPTY = Buffer.alloc(0);

/** Options of SeipdV1Decryptor. */
export interface SeipdV1DecryptOptions {
  /**
   * Gives each input chunk back once decrypted (the blob store's recycler: see util/recycle.ts);
   * nothing of it is referenced afterwards.
   */
  recycle?: (chunk: Buffer) => void;
  /**
   * Verify only: decrypt into one reused buffer, count the literal data in `literalBytes`, push
   * nothing. The stream ends without error only if the packet is whole and its MDC matches.
   */
  discard?: boolean;
}

/** Why a SEIPDv1 packet could not be decrypted (the message says what was wrong). */
export class SeipdV1DecryptError extends Error {
  override readonly name = 'SeipdV1DecryptError';
}

/**
 * Streams the body of one new-format OpenPGP packet out of its bytes: the tag octet, then
 * one or more length-prefixed parts (one-, two- or five-octet lengths; partial lengths say
 * more parts follow).
 */
class PacketBody {
  private state: 'tag' | 'length' | 'body' | 'done' = 'tag';
  private readonly lengthOctets: number[] = [];
  /** Body bytes left in the current part. */
  private left = 0;
  /** More parts follow the current one. */
  private partial = false;

  constructor(
    private readonly tagOctet: number,
    private readonly what: string,
  ) {}

  get done(): boolean {
    return this.state === 'done';
  }

  /** Consumes `data`, handing body bytes to `onBody`; returns what follows the packet's end. */
  feed(data: Buffer, onBody: (body: Buffer) => void): Buffer {
    let i = 0;
    while (i < data.length) {
      switch (this.state) {
        case 'tag':
          if (data[i] !== this.tagOctet) throw new SeipdV1DecryptError(`${this.what}: expected tag octet 0x${this.tagOctet.toString(16)}, found 0x${(data[i] as number).toString(16)}`);
          i++;
          this.state = 'length';
          break;
        case 'length': {
          this.lengthOctets.push(data[i++] as number);
          const o = this.lengthOctets;
          const first = o[0] as number;
          if (first < 192) {
            this.left = first;
            this.partial = false;
          } else if (first < 224) {
            if (o.length < 2) break;
            this.left = ((first - 192) << 8) + (o[1] as number) + 192;
            this.partial = false;
          } else if (first < 255) {
            this.left = 2 ** (first & 0x1f);
            this.partial = true;
          } else {
            if (o.length < 5) break;
            this.left = (o[1] as number) * 2 ** 24 + (((o[2] as number) << 16) | ((o[3] as number) << 8) | (o[4] as number));
            this.partial = false;
          }
          o.length = 0;
          this.state = this.left > 0 ? 'body' : this.partial ? 'length' : 'done';
          break;
        }
        case 'body': {
          const n = Math.min(this.left, data.length - i);
          onBody(data.subarray(i, i + n));
          i += n;
          this.left -= n;
          if (this.left === 0) this.state = this.partial ? 'length' : 'done';
          break;
        }
        case 'done':
          return data.subarray(i);
      }
    }
    return EMPTY;
  }
}

/**
 * A Transform from the bytes of one SEIPDv1 packet (as the encoder writes it; any chunking) to
 * the literal data it carries. Errors with {@link SeipdV1DecryptError} on anything that is not
 * such a packet under this key, and at the end if the MDC does not match.
 */
export class SeipdV1Decryptor extends Transform {
  private readonly outer = new PacketBody(SEIPD_TAG_OCTET, 'SEIPD packet');
  private versionSeen = false;
  private readonly cipher: StreamDecryptor;
  private readonly recycle: ((chunk: Buffer) => void) | undefined;
  private readonly discard: boolean;
  /** Reused plaintext buffer (discard mode). */
  private scratch: Buffer = EMPTY;
  /** Literal data bytes seen (pushed, or only counted with `discard`). */
  literalBytes = 0;
  private readonly sha1: Hash = createHash('sha1');
  /** The last MDC_PACKET_SIZE plaintext bytes seen (held back: they may be the MDC packet). */
  private held: Buffer = EMPTY;
  /** The CFB prefix (18 plaintext bytes) and how much of it has been seen. */
  private readonly prefix = Buffer.alloc(PREFIX_SIZE);
  private prefixAt = 0;
  private readonly literal = new PacketBody(LITERAL_TAG_OCTET, 'literal data packet');
  /** Literal header bytes (format, name length, name, date) still to skip; -1 before the name length is known. */
  private literalHeader: Buffer = EMPTY;
  private literalHeaderLeft = -1;

  constructor(sessionKey: Uint8Array, options: SeipdV1DecryptOptions = {}) {
    super();
    this.recycle = options.recycle;
    this.discard = options.discard ?? false;
    if (!(sessionKey instanceof Uint8Array) || sessionKey.length !== 32) throw new RangeError('seipd-v1: the session key must be 32 bytes (AES-256)');
    this.cipher = createAes256CfbDecryptor(sessionKey, new Uint8Array(BLOCK_SIZE));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      const rest = this.outer.feed(chunk, (body) => this.body(body));
      if (rest.length > 0) throw new SeipdV1DecryptError('bytes after the SEIPD packet');
      this.recycle?.(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (!this.outer.done || !this.versionSeen) throw new SeipdV1DecryptError('the SEIPD packet is truncated');
      if (this.prefixAt < PREFIX_SIZE) throw new SeipdV1DecryptError('the SEIPD packet is too short for its prefix');
      if (!this.literal.done) throw new SeipdV1DecryptError('the literal data packet is truncated');
      const held = this.held;
      if (held.length !== MDC_PACKET_SIZE || held[0] !== MDC_HEADER_0 || held[1] !== MDC_HEADER_1) throw new SeipdV1DecryptError('no MDC packet at the end');
      this.sha1.update(held.subarray(0, 2));
      if (!timingSafeEqual(this.sha1.digest(), held.subarray(2))) throw new SeipdV1DecryptError('the MDC does not match: the data was modified');
      this.cipher.final();
    } catch (err) {
      callback(err as Error);
      return;
    } finally {
      this.scratch.fill(0);
    }
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // The reused buffer of discard mode holds the last plaintext decrypted into it.
    this.scratch.fill(0);
    callback(err);
  }

  /** Ciphertext of the SEIPD body (after the version octet): decrypts and holds back the tail. */
  private body(data: Buffer): void {
    if (!this.versionSeen) {
      if (data[0] !== 1) throw new SeipdV1DecryptError(`SEIPD version ${data[0]}, expected 1`);
      this.versionSeen = true;
      data = data.subarray(1);
      if (data.length === 0) return;
    }
    let plain: Buffer;
    if (this.discard) {
      if (this.scratch.length < data.length) this.scratch = Buffer.allocUnsafeSlow(Math.max(data.length, 64 * 1024));
      plain = this.scratch.subarray(0, data.length);
    } else {
      plain = Buffer.allocUnsafe(data.length);
    }
    this.cipher.updateInto(data, plain);
    const total = this.held.length + plain.length;
    if (total <= MDC_PACKET_SIZE) {
      this.held = Buffer.concat([this.held, plain]);
      return;
    }
    const release = total - MDC_PACKET_SIZE;
    if (release >= this.held.length) {
      if (this.held.length > 0) this.plaintext(this.held);
      this.plaintext(plain.subarray(0, release - this.held.length));
      this.held = Buffer.from(plain.subarray(release - this.held.length));
    } else {
      this.plaintext(this.held.subarray(0, release));
      this.held = Buffer.concat([this.held.subarray(release), plain]);
    }
  }

  /** Plaintext before the MDC packet: hashed, then prefix, literal packet, nothing after it. */
  private plaintext(data: Buffer): void {
    if (data.length === 0) return;
    this.sha1.update(data);
    if (this.prefixAt < PREFIX_SIZE) {
      const n = Math.min(PREFIX_SIZE - this.prefixAt, data.length);
      this.prefix.set(data.subarray(0, n), this.prefixAt);
      this.prefixAt += n;
      data = data.subarray(n);
      if (this.prefixAt === PREFIX_SIZE) {
        const p = this.prefix;
        if (p[16] !== p[14] || p[17] !== p[15]) throw new SeipdV1DecryptError('the prefix check failed: wrong session key, or not SEIPDv1 data');
      }
      if (data.length === 0) return;
    }
    const rest = this.literal.feed(data, (body) => this.literalBody(body));
    if (rest.length > 0) throw new SeipdV1DecryptError(`a packet after the literal data packet (octet 0x${(rest[0] as number).toString(16)}) where only the MDC may follow`);
  }

  /** Literal packet body: skips format, name and date, pushes the data. */
  private literalBody(data: Buffer): void {
    if (this.literalHeaderLeft !== 0) {
      if (this.literalHeaderLeft < 0) {
        // Format octet and name length: the first two bytes of the body.
        const need = 2 - this.literalHeader.length;
        this.literalHeader = Buffer.concat([this.literalHeader, data.subarray(0, need)]);
        data = data.subarray(need);
        if (this.literalHeader.length < 2) return;
        // name, then a 4-byte date
        this.literalHeaderLeft = (this.literalHeader[1] as number) + 4;
      }
      const n = Math.min(this.literalHeaderLeft, data.length);
      this.literalHeaderLeft -= n;
      data = data.subarray(n);
      if (data.length === 0) return;
    }
    this.literalBytes += data.length;
    if (!this.discard) this.push(data);
  }
}

/** Decrypts a SEIPDv1 packet stream under its session key (see SeipdV1Decryptor). */
export function createSeipdV1Decryptor(sessionKey: Uint8Array, options?: SeipdV1DecryptOptions): SeipdV1Decryptor {
  return new SeipdV1Decryptor(sessionKey, options);
}
