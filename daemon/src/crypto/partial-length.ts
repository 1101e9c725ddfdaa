/**
 * Exact emulation of the partial-body-length framing that openpgp.js 6.3.2 applies in
 * `PacketList.write()` to every streamed packet (literal data, SEIPD, ...).
 *
 * openpgp.js runs the packet body stream through web-stream-tools' `transform()`, whose
 * per-chunk callback does the following for every upstream chunk (empty chunks included):
 *
 *  - append the chunk to a buffer;
 *  - if the buffer holds at least 512 bytes, emit ONE chunk consisting of the partial-length
 *    octet `0xE0 + p` followed by the first `2^p` buffered bytes, where
 *    `p = min(floor(log2(buffered)), 30)`, and keep the rest buffered. Only one partial chunk
 *    is emitted per upstream chunk, even if 512 bytes or more remain buffered afterwards; the
 *    remainder waits for the next upstream chunk (an empty one is enough to release it);
 *  - on end, emit the definite (1, 2 or 5 octet) length of whatever is buffered, followed by it.
 *
 * The produced bytes therefore depend on the chunk boundaries of the body stream, which is why
 * this class must be fed the exact chunk sequence openpgp.js would see.
 */

/** Buffered byte count at which openpgp.js starts emitting a partial-length chunk (`minLength`). */
export const PARTIAL_MIN_LENGTH = 512;

/** Largest partial-length exponent openpgp.js uses (2^30 bytes). */
export const PARTIAL_MAX_POWER = 30;

/**
 * The exponent openpgp.js picks for a partial chunk when `bufferLength` bytes are buffered.
 * Uses the very same floating-point expression as openpgp.js (`Math.log(n) / Math.LN2 | 0`)
 * so that any rounding quirk is reproduced as well.
 */
export function partialLengthPower(bufferLength: number): number {
  return Math.min((Math.log(bufferLength) / Math.LN2) | 0, PARTIAL_MAX_POWER);
}

/** The one-octet partial body length header `0xE0 + power` (openpgp.js `writePartialLength`). */
export function encodePartialLength(power: number): Uint8Array {
  if (!Number.isInteger(power) || power < 0 || power > PARTIAL_MAX_POWER) {
    throw new RangeError(`partial length power must be an integer between 0 and ${PARTIAL_MAX_POWER}, got ${power}`);
  }
  return Uint8Array.of(0xe0 + power);
}

/**
 * A definite new-format body length in its 1-, 2- or 5-octet encoding, exactly like
 * openpgp.js `writeSimpleLength` (< 192: one octet, < 8384: two octets, else 0xFF + 4 octets).
 */
export function encodeSimpleLength(length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 0xffffffff) {
    throw new RangeError(`packet body length must be an integer between 0 and 2^32-1, got ${length}`);
  }
  if (length < 192) {
    return Uint8Array.of(length);
  }
  if (length < 8384) {
    const rest = length - 192;
    return Uint8Array.of((rest >> 8) + 192, rest & 0xff);
  }
  return Uint8Array.of(0xff, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
}

/**
 * Streaming partial-body-length framer mirroring openpgp.js `PacketList.write()` for one
 * streamed packet body (the packet's tag octet is NOT produced; openpgp.js emits it as a
 * separate chunk before the framed body).
 *
 * Feed it the body's upstream chunks in order with {@link PartialLengthFramer.push}, then call
 * {@link PartialLengthFramer.end}. Each call returns the chunk openpgp.js would emit at that
 * point (or `null`), as a list of pieces: a fresh length-header array followed by views
 * (`subarray`s) of the pushed data. No payload byte is ever copied, so pushed arrays must not
 * be modified while they are buffered.
 */
export class PartialLengthFramer {
  /** Buffered pieces, oldest first; pieces[0] may be a tail view of an earlier piece. */
  private pieces: Uint8Array[] = [];
  private buffered = 0;
  private ended = false;
  /** The backing buffer of the last copy detach() made. */
  private copied: ArrayBufferLike | null = null;

  /** Number of bytes currently held back (waiting for more input or the end). */
  get bufferedLength(): number {
    return this.buffered;
  }

  /**
   * Feeds one upstream chunk. A chunk may be given as several pieces that together form that
   * single chunk (they count as ONE chunk for the framing decision). Empty chunks count too:
   * they can release a partial chunk when 512 or more bytes are still buffered.
   * @returns the emitted chunk as pieces (header octet first), or `null` if nothing is emitted.
   */
  push(chunk: Uint8Array | readonly Uint8Array[]): Uint8Array[] | null {
    if (this.ended) {
      throw new Error('PartialLengthFramer: push() after end()');
    }
    if (chunk instanceof Uint8Array) {
      this.append(chunk);
    } else {
      for (const piece of chunk) {
        this.append(piece);
      }
    }
    if (this.buffered < PARTIAL_MIN_LENGTH) {
      return null;
    }
    const power = partialLengthPower(this.buffered);
    const out: Uint8Array[] = [encodePartialLength(power)];
    // openpgp.js takes `subarray(0, 1 + 2^power)` of header + buffer; mirror its clamping.
    this.take(Math.min(2 ** power, this.buffered), out);
    return out;
  }

  /**
   * Ends the body: returns the final chunk (definite length header + everything still
   * buffered). openpgp.js always emits this chunk, even when nothing is buffered (then it is
   * the single octet 0x00).
   */
  end(): Uint8Array[] {
    if (this.ended) {
      throw new Error('PartialLengthFramer: end() called twice');
    }
    this.ended = true;
    const out: Uint8Array[] = [encodeSimpleLength(this.buffered)];
    for (const piece of this.pieces) {
      out.push(piece);
    }
    this.pieces = [];
    this.buffered = 0;
    return out;
  }

  /**
   * Replaces the views of pushed data that are still buffered with a copy of their own, so the
   * pushed arrays may be reused or moved (transferred to another thread) from now on.
   */
  detach(): void {
    // Nothing to do when all that is held is already a copy made here (or a view of one).
    if (this.pieces.every((piece) => piece.buffer === this.copied)) {
      return;
    }
    const copy = new Uint8Array(this.buffered);
    this.copied = copy.buffer;
    let offset = 0;
    for (const piece of this.pieces) {
      copy.set(piece, offset);
      offset += piece.length;
    }
    this.pieces = [copy];
  }

  private append(piece: Uint8Array): void {
    if (piece.length > 0) {
      this.pieces.push(piece);
      this.buffered += piece.length;
    }
  }

  /** Moves the first `count` buffered bytes into `out` as views. */
  private take(count: number, out: Uint8Array[]): void {
    let remaining = count;
    let used = 0;
    const pieces = this.pieces;
    while (remaining > 0) {
      const piece = pieces[used];
      if (piece === undefined) {
        throw new Error('PartialLengthFramer: internal buffer underrun');
      }
      if (piece.length <= remaining) {
        out.push(piece);
        remaining -= piece.length;
        used += 1;
      } else {
        out.push(piece.subarray(0, remaining));
        pieces[used] = piece.subarray(remaining);
        remaining = 0;
      }
    }
    if (used > 0) {
      pieces.splice(0, used);
    }
    this.buffered -= count;
  }
}
