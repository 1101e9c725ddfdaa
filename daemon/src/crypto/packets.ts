/**
 * OpenPGP packet-level helpers (RFC 4880 / RFC 9580 section 4.2): header parsing, splitting
 * PKESK packets off the front of a message, and reading the recipient of a v3 PKESK.
 */

/** Packet tag of a Public-Key Encrypted Session Key packet. */
export const TAG_PKESK = 1;
/** Packet tag of a Marker packet (ignored by readers). */
export const TAG_MARKER = 10;

/** A parsed OpenPGP packet header. */
export interface PacketHeader {
  /** Packet tag (1..63; old-format headers can only express 1..15). */
  tag: number;
  /** Bytes taken by the header: tag octet plus length octets (for partial lengths: the first one). */
  headerLength: number;
  /**
   * Body length in bytes; `'partial'` for a new-format partial body length (the body continues
   * with further length octets, the first part is `partialFirstLength` bytes); `'indeterminate'`
   * for an old-format length type 3 (the body runs to the end of the data).
   */
  bodyLength: number | 'partial' | 'indeterminate';
  /** Length of the first body part when `bodyLength` is `'partial'`. */
  partialFirstLength?: number;
  /** Whether the header uses the new (0xC0) format. */
  newFormat: boolean;
}

/** Result of {@link splitPkesks}. */
export interface SplitPkesks {
  /** Each PKESK packet, whole (header included), as its own copy. */
  pkesks: Uint8Array[];
  /** View of the input from the first packet that is neither a PKESK nor a marker packet (may be empty). */
  rest: Uint8Array;
}

/** The fields of a v3 PKESK packet that identify its recipient. */
export interface PkeskInfo {
  /** PKESK version (always 3 here). */
  version: number;
  /** Recipient key ID as 16 lowercase hex digits ('0000000000000000' for wildcard). */
  keyId: string;
  /** Public-key algorithm ID (e.g. 1 RSA, 18 ECDH). */
  algorithm: number;
}

/** Error thrown for malformed or unsupported OpenPGP packet data. */
export class OpenPgpPacketError extends Error {
  override name = 'OpenPgpPacketError';
}

function readUint32(buf: Uint8Array, at: number): number {
  return (((buf[at] ?? 0) << 24) | ((buf[at + 1] ?? 0) << 16) | ((buf[at + 2] ?? 0) << 8) | (buf[at + 3] ?? 0)) >>> 0;
}

function needBytes(buf: Uint8Array, offset: number, count: number, what: string): void {
  if (offset + count > buf.length) {
    throw new OpenPgpPacketError(`truncated OpenPGP ${what} at offset ${offset}: need ${count} bytes, have ${buf.length - offset}`);
  }
}

/**
 * Parses the OpenPGP packet header starting at `offset` of `buf`: old format (tags < 16, length
 * types 0/1/2 = 1/2/4 length octets, 3 = indeterminate) and new format (1-, 2- and 5-octet
 * lengths and partial body lengths). Only the header must be present in `buf`, not the body.
 * @throws OpenPgpPacketError on a non-packet octet, reserved tag 0 or a truncated header.
 */
export function readPacketHeader(buf: Uint8Array, offset: number): PacketHeader {
  if (!Number.isInteger(offset) || offset < 0) {
    throw new RangeError(`invalid packet offset ${offset}`);
  }
  needBytes(buf, offset, 1, 'packet header');
  const first = buf[offset] ?? 0;
  if ((first & 0x80) === 0) {
    throw new OpenPgpPacketError(
      `not an OpenPGP packet header at offset ${offset}: octet 0x${first.toString(16).padStart(2, '0')} lacks bit 7`,
    );
  }
  const newFormat = (first & 0x40) !== 0;
  const tag = newFormat ? first & 0x3f : (first >> 2) & 0x0f;
  if (tag === 0) {
    throw new OpenPgpPacketError(`reserved packet tag 0 at offset ${offset}`);
  }
  if (!newFormat) {
    const lengthType = first & 0x03;
    if (lengthType === 3) {
      return { tag, headerLength: 1, bodyLength: 'indeterminate', newFormat };
    }
    const octets = lengthType === 0 ? 1 : lengthType === 1 ? 2 : 4;
    needBytes(buf, offset + 1, octets, 'packet length');
    let bodyLength: number;
    if (octets === 1) {
      bodyLength = buf[offset + 1] ?? 0;
    } else if (octets === 2) {
      bodyLength = ((buf[offset + 1] ?? 0) << 8) | (buf[offset + 2] ?? 0);
    } else {
      bodyLength = readUint32(buf, offset + 1);
    }
    return { tag, headerLength: 1 + octets, bodyLength, newFormat };
  }
  needBytes(buf, offset + 1, 1, 'packet length');
  const l0 = buf[offset + 1] ?? 0;
  if (l0 < 192) {
    return { tag, headerLength: 2, bodyLength: l0, newFormat };
  }
  if (l0 < 224) {
    needBytes(buf, offset + 1, 2, 'packet length');
    return { tag, headerLength: 3, bodyLength: ((l0 - 192) << 8) + (buf[offset + 2] ?? 0) + 192, newFormat };
  }
  if (l0 < 255) {
    return { tag, headerLength: 2, bodyLength: 'partial', partialFirstLength: 2 ** (l0 & 0x1f), newFormat };
  }
  needBytes(buf, offset + 1, 5, 'packet length');
  return { tag, headerLength: 6, bodyLength: readUint32(buf, offset + 2), newFormat };
}

/**
 * Splits the PKESK packets (tag 1) off the front of a small binary OpenPGP message or packet
 * sequence (e.g. `openpgp.encryptSessionKey({ format: 'binary' })` output, or the first bytes of
 * an encrypted message), skipping marker packets (tag 10). Stops at the first other packet,
 * whose header need not be complete in `message`.
 * @throws OpenPgpPacketError on garbage, or a PKESK/marker packet that is truncated or lacks a
 *   definite length.
 */
export function splitPkesks(message: Uint8Array): SplitPkesks {
  const pkesks: Uint8Array[] = [];
  let offset = 0;
  while (offset < message.length) {
    const first = message[offset] ?? 0;
    if ((first & 0x80) === 0) {
      throw new OpenPgpPacketError(
        `not an OpenPGP packet header at offset ${offset}: octet 0x${first.toString(16).padStart(2, '0')} lacks bit 7`,
      );
    }
    const tag = (first & 0x40) !== 0 ? first & 0x3f : (first >> 2) & 0x0f;
    if (tag !== TAG_PKESK && tag !== TAG_MARKER) {
      break;
    }
    const what = tag === TAG_PKESK ? 'PKESK packet' : 'marker packet';
    const header = readPacketHeader(message, offset);
    if (typeof header.bodyLength !== 'number') {
      throw new OpenPgpPacketError(`${what} at offset ${offset} has no definite length (${header.bodyLength})`);
    }
    const end = offset + header.headerLength + header.bodyLength;
    if (end > message.length) {
      throw new OpenPgpPacketError(
        `truncated ${what} at offset ${offset}: body of ${header.bodyLength} bytes, have ${message.length - offset - header.headerLength}`,
      );
    }
    if (tag === TAG_PKESK) {
      pkesks.push(new Uint8Array(message.subarray(offset, end))); // a copy, also for Buffer input
    }
    offset = end;
  }
  return { pkesks, rest: message.subarray(offset) };
}

/**
 * Reads version, recipient key ID and public-key algorithm of one whole v3 PKESK packet
 * (header included, nothing after it).
 * @throws OpenPgpPacketError on another packet type, truncated or trailing data, or a PKESK
 *   version other than 3 (v6 PKESKs carry a fingerprint instead and are not supported).
 */
export function parsePkesk(packet: Uint8Array): PkeskInfo {
  const header = readPacketHeader(packet, 0);
  if (header.tag !== TAG_PKESK) {
    throw new OpenPgpPacketError(`expected a PKESK packet (tag ${TAG_PKESK}), got tag ${header.tag}`);
  }
  if (typeof header.bodyLength !== 'number') {
    throw new OpenPgpPacketError(`PKESK packet has no definite length (${header.bodyLength})`);
  }
  const end = header.headerLength + header.bodyLength;
  if (end > packet.length) {
    throw new OpenPgpPacketError(
      `truncated PKESK packet: body of ${header.bodyLength} bytes, have ${packet.length - header.headerLength}`,
    );
  }
  if (end < packet.length) {
    throw new OpenPgpPacketError(`${packet.length - end} trailing bytes after the PKESK packet`);
  }
  const body = packet.subarray(header.headerLength, end);
  const version = body[0];
  if (version === undefined) {
    throw new OpenPgpPacketError('empty PKESK packet body');
  }
  if (version !== 3) {
    throw new OpenPgpPacketError(`unsupported PKESK version ${version} (only v3 is supported)`);
  }
  // version (1) + key ID (8) + algorithm (1) + at least one octet of encrypted session key.
  if (body.length < 11) {
    throw new OpenPgpPacketError(`truncated v3 PKESK packet: body is ${body.length} bytes`);
  }
  const keyId = Buffer.from(body.subarray(1, 9)).toString('hex');
  return { version, keyId, algorithm: body[9] ?? 0 };
}
