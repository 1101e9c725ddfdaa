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
 *
 * P (everything but the cipher and the outer framing) is {@link SeipdV1Plaintext}; the encoder
 * runs it itself, or — with `externalMdc` — leaves the SHA-1 to a SeipdV1Plaintext that another
 * thread runs over the same input chunks and takes the digest at the end (`endWithMdc`).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { createAes256CfbEncryptor, type StreamEncryptor } from './cfb.ts';
import { createNativeCfb, NativeCfb } from './native-cfb.ts';
import { PartialLengthFramer } from './partial-length.ts';

/** Options of createSeipdV1Encryptor. */
export interface SeipdV1Options {
  /** 32-byte AES-256 session key. */
  sessionKey: Uint8Array;
  /** Literal packet filename (UTF-8, truncated to at most 255 bytes on a character boundary); default ''. */
  filename?: string;
  /** Literal packet date; default now. Truncated to whole seconds like openpgp.js `normalizeDate`. */
  date?: Date;
  /** 18-byte CFB prefix (16 random bytes + the last 2 repeated); default random. */
  prefix?: Uint8Array;
  /**
   * The SHA-1 of the MDC comes from elsewhere ({@link SeipdV1Encryptor.endWithMdc}, computed by
   * a SeipdV1Plaintext over the same prefix, literal header and input chunks); default false.
   */
  externalMdc?: boolean;
  /**
   * Receives the output synchronously instead of the readable side, which then carries nothing
   * (it still ends). A unit is valid only during the call: with the native cipher the encoder
   * writes the ciphertext into one reused buffer, so the sink copies what it keeps. Saves an
   * allocation per 64 KiB and the garbage collection of all of them (the encryption worker).
   */
  sink?: (unit: Uint8Array) => void;
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
/** Length of the MDC's SHA-1 value. */
const MDC_SIZE = 20;
/** Largest slice handed to one cipher.update() call (each call allocates its output). */
const MAX_UPDATE = 64 * 1024;
/** Pieces smaller than this are coalesced (copied) into one buffer instead of handled one by one. */
const SMALL_PIECE = 8 * 1024;
/** The reused ciphertext buffer of an encoder with a sink (larger chunks get one of their own). */
const ARENA_BYTES = 1024 * 1024;

/**
 * Creates a Transform that turns plaintext bytes (any chunking) into one complete SEIPDv1
 * packet (tag 18, including its header and partial-length octets), i.e. exactly the bytes that
 * follow the PKESK packet(s) in openpgp.js `encrypt()` output for the same inputs and chunking.
 *
 * Throws synchronously on invalid options (wrong key or prefix length, bad date). Written
 * buffers are referenced, not copied, while they wait for framing: do not modify a buffer after
 * writing it.
 */
export function createSeipdV1Encryptor(options: SeipdV1Options): SeipdV1Encryptor {
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

/**
 * The plaintext stream P of a SEIPDv1 packet as the chunks that are encrypted one by one: the
 * prefix, the literal packet's tag octet, the framed literal packet (header, then the input
 * chunks), the MDC header; with `hashing`, also the SHA-1 over all of them (the MDC's value).
 */
export class SeipdV1Plaintext {
  readonly prefix: Uint8Array;
  readonly date: Date;
  private readonly header: Uint8Array;
  private readonly framer = new PartialLengthFramer();
  private readonly sha1: Hash | null;

  /** Throws on an invalid date or prefix. */
  constructor(options: Pick<SeipdV1Options, 'filename' | 'date' | 'prefix'>, hashing: boolean) {
    const date = options.date ?? new Date();
    if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
      throw new TypeError('seipd-v1: date must be a valid Date');
    }
    this.date = date;
    this.header = literalHeader(options.filename ?? '', date);
    this.prefix = makePrefix(options.prefix);
    this.sha1 = hashing ? createHash('sha1') : null;
  }

  /** The chunks of P before any input. */
  begin(): Uint8Array[][] {
    const chunks = [[this.prefix], [Uint8Array.of(LITERAL_TAG_OCTET)]];
    const framed = this.framer.push(this.header);
    if (framed !== null) {
      chunks.push(framed);
    }
    chunks.forEach((c) => this.hash(c));
    return chunks;
  }

  /** The chunk of P that one input chunk releases, if any (views of the input). */
  push(chunk: Uint8Array): Uint8Array[] | null {
    const framed = this.framer.push(chunk);
    if (framed !== null) {
      this.hash(framed);
    }
    return framed;
  }

  /** Copies what the framing holds back, so the input chunks pushed so far may be moved or reused. */
  detach(): void {
    this.framer.detach();
  }

  /** The chunks of P after the input, up to the MDC header (the SHA-1 value follows them). */
  end(): Uint8Array[][] {
    const chunks = [this.framer.end(), [MDC_HEADER]];
    chunks.forEach((c) => this.hash(c));
    return chunks;
  }

  /** The MDC's SHA-1 value (after end(); only when hashing). */
  digest(): Buffer {
    if (this.sha1 === null) {
      throw new Error('seipd-v1: this plaintext side does not hash');
    }
    return this.sha1.digest();
  }

  private hash(pieces: readonly Uint8Array[]): void {
    for (const piece of pieces) {
      this.sha1?.update(piece);
    }
  }
}

/** The Transform behind {@link createSeipdV1Encryptor}. */
export class SeipdV1Encryptor extends Transform {
  private readonly cipher: StreamEncryptor;
  /**
   * The cipher when it is the native addon's and hashes too: then it computes the MDC's SHA-1
   * in the same pass as the encryption, over the same chunks of P (see native-cfb.ts).
   */
  private readonly fused: NativeCfb | null;
  /** See SeipdV1Options.sink; with it and the native cipher, ciphertext goes into `arena`. */
  private readonly sink: ((unit: Uint8Array) => void) | null;
  private arena: Buffer | null = null;
  private arenaUsed = 0;
  private readonly plain: SeipdV1Plaintext;
  private readonly externalMdc: boolean;
  private mdc: Uint8Array | undefined;
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
    this.externalMdc = options.externalMdc === true;
    this.fused = this.externalMdc ? null : createNativeCfb(sessionKey, Buffer.alloc(BLOCK_SIZE));
    this.plain = new SeipdV1Plaintext(options, !this.externalMdc && this.fused === null);
    this.cipher = this.fused ?? createAes256CfbEncryptor(sessionKey, Buffer.alloc(BLOCK_SIZE));
    this.sink = options.sink ?? null;
    // S starts with the version octet (not encrypted), then the chunks of P.
    this.feedSeipd([Uint8Array.of(1)]);
    for (const chunk of this.plain.begin()) {
      this.feedSeipd(this.encrypt(chunk));
    }
  }

  /**
   * Copies the plaintext that the framing still holds back, so every input chunk whose write
   * has completed may be reused or moved (transferred to another thread) from now on.
   */
  detachInput(): void {
    this.plain.detach();
  }

  /** Ends the input with the MDC's SHA-1 value computed elsewhere (only with `externalMdc`). */
  endWithMdc(mdc: Uint8Array): void {
    if (!this.externalMdc || !(mdc instanceof Uint8Array) || mdc.length !== MDC_SIZE) {
      this.destroy(new Error(`seipd-v1: endWithMdc needs externalMdc and a ${MDC_SIZE}-byte SHA-1 value`));
      return;
    }
    this.mdc = mdc;
    this.end();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      const framed = this.plain.push(chunk);
      if (framed !== null) {
        this.feedSeipd(this.encrypt(framed));
      }
    } catch (error) {
      callback(asError(error));
      return;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    try {
      for (const chunk of this.plain.end()) {
        this.feedSeipd(this.encrypt(chunk));
      }
      const mdc = this.externalMdc ? this.mdc : (this.fused?.digest() ?? this.plain.digest());
      if (mdc === undefined) {
        throw new Error('seipd-v1: the input ended without the MDC value (use endWithMdc)');
      }
      // The MDC value itself is encrypted, not hashed.
      this.feedSeipd(this.encrypt([mdc], false));
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

  /** One chunk of the SEIPD body stream S (given as pieces). */
  private feedSeipd(pieces: readonly Uint8Array[]): void {
    const framed = this.seipdFramer.push(pieces);
    if (framed !== null) {
      this.output(framed);
    }
  }

  /** CFB-encrypts one chunk of P (hashing it for the MDC if the cipher does that); returns the ciphertext pieces. */
  private encrypt(pieces: readonly Uint8Array[], hash = true): Buffer[] {
    const out: Buffer[] = [];
    const fused = this.fused;
    const native = this.cipher instanceof NativeCfb ? this.cipher : null;
    const target = native && this.sink ? this.reserve(pieces.reduce((n, p) => n + p.length, 0)) : null;
    let offset = 0;
    forEachUnit(pieces, (unit) => {
      if (native && target) {
        const into = target.subarray(offset, offset + unit.length);
        native.encryptInto(unit, into, hash && fused !== null);
        offset += unit.length;
        out.push(into);
      } else {
        out.push(fused ? fused.encrypt(unit, hash) : this.cipher.update(unit));
      }
    });
    return out;
  }

  /**
   * `length` bytes of the arena for one chunk's ciphertext, or null if the chunk is larger than
   * the arena. When it is full it starts over: everything given to the sink was copied there,
   * and what the framing still holds of it is copied now.
   */
  private reserve(length: number): Buffer | null {
    if (length > ARENA_BYTES) return null;
    this.arena ??= Buffer.allocUnsafeSlow(ARENA_BYTES);
    if (this.arenaUsed + length > ARENA_BYTES) {
      this.seipdFramer.detach();
      this.arenaUsed = 0;
    }
    const slice = this.arena.subarray(this.arenaUsed, this.arenaUsed + length);
    this.arenaUsed += length;
    return slice;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // The native cipher's key schedule is wiped now, not when it is collected (final() after the
    // last byte does it on the normal path; a second wipe does nothing). It is `fused` or, with
    // an external MDC, a native cipher that only encrypts.
    if (this.cipher instanceof NativeCfb) this.cipher.wipe();
    callback(error);
  }

  /** Pushes framed output (or gives it to the sink), coalescing tiny pieces (headers) with their neighbours. */
  private output(pieces: Uint8Array[]): void {
    if (this.outputHead !== null) {
      pieces.unshift(this.outputHead);
      this.outputHead = null;
    }
    const sink = this.sink;
    if (sink) {
      for (const piece of pieces) if (piece.length > 0) sink(piece);
      return;
    }
    forEachUnit(pieces, (unit) => {
      this.push(unit);
    });
  }
}
