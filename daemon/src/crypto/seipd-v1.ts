/**
 * Native (node:crypto) streaming encoder for an OpenPGP SEIPDv1 packet (tag 18, version 1,
 * AES-256-CFB + SHA-1 MDC) whose output is byte-identical to what openpgp.js 6.3.2 writes for
 * the same session key, CFB prefix, literal filename/date and input chunk sequence.
 *
 * openpgp.js builds the packet as a chain of web streams; the chunk boundaries of every stage
 * decide where its partial-body-length headers go. The chain, per the 6.3.2 sources, is:
 *
 *   L  = concat([literalHeader, ...inputChunks])                      (LiteralDataPacket.write)
 *   F1 = [0xCB] ++ frame(L)                                            (PacketList.write)
 *   P  = concat([prefix, ...F1, 0xD3 0x14]) ++ [SHA-1 of all that]     (SEIPD encrypt, MDC)
 *   E  = cipher.update(chunk) for each chunk of P                      (nodeEncrypt, 1:1 chunks)
 *   S  = concat([0x01, ...E])                                          (SEIPD write)
 *   out = [0xD2] ++ frame(S)                                           (outer PacketList.write)
 *
 * where `frame` is {@link PartialLengthFramer}. CFB is a byte-wise stream mode, so the cipher
 * bytes do not depend on chunking; only the framing does, and both framers are driven with the
 * exact chunk sequences above (lengths matter, not contents).
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import type { Cipher, Hash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { PartialLengthFramer } from './partial-length.ts';

/** Options of createSeipdV1Encryptor. */
export interface SeipdV1Options {
  /** 32-byte AES-256 session key. */
  sessionKey: Uint8Array;
  /** Literal packet filename (UTF-8, truncated to at most 255 bytes on a character boundary); default ''. */
  filename?: string;
  /** Literal packet date; default now. Truncated to whole seconds like openpgp.js `normalizeDate`. */
  date?: Date;
  /** 18-byte CFB prefix (16 random bytes + the last 2 repeated); for tests only; default random. */
  prefix?: Uint8Array;
}

/** AES-256 key size in bytes. */
const KEY_SIZE = 32;
/** AES block size in bytes; the CFB prefix is this plus 2. */
const BLOCK_SIZE = 16;
/** Length of the OpenPGP CFB prefix (random block + 2 repeated check bytes). */
const PREFIX_SIZE = BLOCK_SIZE + 2;
/** Packet tag octets (new format): SEIPD = 18, literal data = 11. */
const SEIPD_TAG_OCTET = 0xc0 | 18;
const LITERAL_TAG_OCTET = 0xc0 | 11;
/** Literal data format 'b' (binary). */
const LITERAL_FORMAT_BINARY = 0x62;
/** MDC packet header (tag 19, length 20) that is hashed before the SHA-1 value itself. */
const MDC_HEADER = Uint8Array.of(0xd3, 0x14);
/** Largest slice handed to one cipher.update() call (Node allocates and zero-fills each output). */
const MAX_UPDATE = 64 * 1024;
/** Pieces smaller than this are coalesced (copied) into one buffer instead of handled one by one. */
const SMALL_PIECE = 8 * 1024;

/**
 * Creates a Transform that turns plaintext bytes (any chunking) into one complete SEIPDv1
 * packet (tag 18, including its header and partial-length octets), i.e. exactly the bytes that
 * follow the PKESK packet(s) in openpgp.js `encrypt()` output for the same inputs and chunking.
 *
 * Throws synchronously on invalid options (wrong key or prefix length, bad date). Written
 * buffers are referenced, not copied, while they wait for framing: do not modify a buffer after
 * writing it.
 */
export function createSeipdV1Encryptor(options: SeipdV1Options): Transform {
  return new SeipdV1Encryptor(options);
}

/** Encodes a filename as UTF-8, cut to at most 255 bytes without splitting a character. */
function encodeFilename(filename: string): Uint8Array {
  const bytes = new TextEncoder().encode(filename);
  if (bytes.length <= 255) {
    return bytes;
  }
  let end = 255;
  // Back up over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) {
    end -= 1;
  }
  return bytes.subarray(0, end);
}

/** The literal packet body header: format, filename length, filename, 4-byte date. */
function literalHeader(filename: string, date: Date): Uint8Array {
  const name = encodeFilename(filename);
  const seconds = Math.floor(date.getTime() / 1000);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 0xffffffff) {
    throw new RangeError(`seipd-v1: literal date must be between 1970-01-01 and 2106-02-07, got ${String(date)}`);
  }
  const header = new Uint8Array(2 + name.length + 4);
  header[0] = LITERAL_FORMAT_BINARY;
  header[1] = name.length;
  header.set(name, 2);
  new DataView(header.buffer).setUint32(2 + name.length, seconds);
  return header;
}

/** Validates a caller-supplied prefix or makes a random one. */
function makePrefix(prefix: Uint8Array | undefined): Uint8Array {
  if (prefix === undefined) {
    const random = randomBytes(PREFIX_SIZE);
    random[BLOCK_SIZE] = random[BLOCK_SIZE - 2] ?? 0;
    random[BLOCK_SIZE + 1] = random[BLOCK_SIZE - 1] ?? 0;
    return random;
  }
  if (!(prefix instanceof Uint8Array) || prefix.length !== PREFIX_SIZE) {
    throw new RangeError(`seipd-v1: prefix must be a Uint8Array of ${PREFIX_SIZE} bytes, got ${describeLength(prefix)}`);
  }
  if (prefix[BLOCK_SIZE] !== prefix[BLOCK_SIZE - 2] || prefix[BLOCK_SIZE + 1] !== prefix[BLOCK_SIZE - 1]) {
    throw new RangeError('seipd-v1: prefix bytes 16 and 17 must repeat bytes 14 and 15');
  }
  return Uint8Array.from(prefix);
}

function describeLength(value: unknown): string {
  return value instanceof Uint8Array ? `${value.length} bytes` : typeof value;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(`seipd-v1: ${String(error)}`);
}

/** Zero-copy Buffer view of a Uint8Array (push() and the crypto APIs prefer Buffers). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Calls `sink` with the bytes of `pieces` in order, in units of at most MAX_UPDATE bytes:
 * large pieces are passed as views (split if needed); runs of small pieces are copied into one
 * buffer so that per-call overhead does not dominate on small chunks and headers.
 */
function forEachUnit(pieces: readonly Uint8Array[], sink: (unit: Buffer) => void): void {
  let pending: Uint8Array[] = [];
  let pendingLength = 0;
  const flush = (): void => {
    if (pending.length === 1 && pending[0] !== undefined) {
      sink(asBuffer(pending[0]));
    } else if (pending.length > 1) {
      sink(Buffer.concat(pending, pendingLength));
    }
    pending = [];
    pendingLength = 0;
  };
  for (const piece of pieces) {
    if (piece.length === 0) {
      continue;
    }
    if (piece.length < SMALL_PIECE) {
      if (pendingLength + piece.length > MAX_UPDATE) {
        flush();
      }
      pending.push(piece);
      pendingLength += piece.length;
      continue;
    }
    flush();
    for (let start = 0; start < piece.length; start += MAX_UPDATE) {
      sink(asBuffer(piece.subarray(start, Math.min(start + MAX_UPDATE, piece.length))));
    }
  }
  flush();
}

/** The Transform behind {@link createSeipdV1Encryptor}. */
class SeipdV1Encryptor extends Transform {
  private readonly cipher: Cipher;
  private readonly sha1: Hash = createHash('sha1');
  /** Frames the literal data packet body (plaintext side). */
  private readonly literalFramer = new PartialLengthFramer();
  /** Frames the SEIPD packet body (ciphertext side). */
  private readonly seipdFramer = new PartialLengthFramer();
  /** Output bytes not yet pushed because they are tiny (the tag octet). */
  private outputHead: Uint8Array | null = Uint8Array.of(SEIPD_TAG_OCTET);

  constructor(options: SeipdV1Options) {
    super();
    const { sessionKey } = options;
    if (!(sessionKey instanceof Uint8Array) || sessionKey.length !== KEY_SIZE) {
      throw new RangeError(`seipd-v1: session key must be a Uint8Array of ${KEY_SIZE} bytes (AES-256), got ${describeLength(sessionKey)}`);
    }
    const date = options.date ?? new Date();
    if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
      throw new TypeError('seipd-v1: date must be a valid Date');
    }
    const header = literalHeader(options.filename ?? '', date);
    const prefix = makePrefix(options.prefix);
    this.cipher = createCipheriv('aes-256-cfb', sessionKey, Buffer.alloc(BLOCK_SIZE));

    // S starts with the version octet (not encrypted), then the chunks of P: the prefix, the
    // literal packet's tag octet, then the framed literal packet (fed by the input chunks).
    this.feedSeipd([Uint8Array.of(1)]);
    this.feedSeipd(this.encrypt([prefix], true));
    this.feedSeipd(this.encrypt([Uint8Array.of(LITERAL_TAG_OCTET)], true));
    this.feedLiteral(header);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.feedLiteral(chunk);
    } catch (error) {
      callback(asError(error));
      return;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.feedSeipd(this.encrypt(this.literalFramer.end(), true));
      this.feedSeipd(this.encrypt([MDC_HEADER], true));
      this.feedSeipd(this.encrypt([this.sha1.digest()], false));
      const rest = this.cipher.final();
      if (rest.length !== 0) {
        throw new Error('seipd-v1: unexpected trailing cipher output');
      }
      this.output(this.seipdFramer.end());
    } catch (error) {
      callback(asError(error));
      return;
    }
    callback();
  }

  /** One chunk of the literal packet stream L. */
  private feedLiteral(chunk: Uint8Array): void {
    const framed = this.literalFramer.push(chunk);
    if (framed !== null) {
      this.feedSeipd(this.encrypt(framed, true));
    }
  }

  /** One chunk of the SEIPD body stream S (given as pieces). */
  private feedSeipd(pieces: readonly Uint8Array[]): void {
    const framed = this.seipdFramer.push(pieces);
    if (framed !== null) {
      this.output(framed);
    }
  }

  /** Hashes (optionally) and CFB-encrypts one chunk of P; returns the ciphertext pieces. */
  private encrypt(pieces: readonly Uint8Array[], hash: boolean): Buffer[] {
    const out: Buffer[] = [];
    forEachUnit(pieces, (unit) => {
      if (hash) {
        this.sha1.update(unit);
      }
      out.push(this.cipher.update(unit));
    });
    return out;
  }

  /** Pushes framed output, coalescing tiny pieces (headers) with their neighbours. */
  private output(pieces: Uint8Array[]): void {
    if (this.outputHead !== null) {
      pieces.unshift(this.outputHead);
      this.outputHead = null;
    }
    forEachUnit(pieces, (unit) => {
      this.push(unit);
    });
  }
}
