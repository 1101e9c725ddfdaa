/**
 * MessageSplitter: takes a whole OpenPGP message as it streams in (a file encrypted by a client)
 * and separates its session-key packets from the encrypted data: the PKESK packets at the front
 * are collected (small; the head is capped), and everything from the SEIPDv1 packet on is passed
 * through unchanged — that is the blob sealdrop stores.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { fail } from '../core/errors.ts';
import { OpenPgpPacketError, readPacketHeader, TAG_MARKER, TAG_PKESK } from './packets.ts';

const TAG_SEIPD = 18;
/** The head (session-key packets) may not exceed this. */
const MAX_HEAD = 64 * 1024;

/** Splits PKESKs off the front of a streamed OpenPGP message; `pkesks()` resolves once they are known. */
export class MessageSplitter extends Transform {
  private head: Buffer[] = [];
  private headBytes = 0;
  private found: Uint8Array[] | undefined;
  private resolve!: (p: Uint8Array[]) => void;
  private reject!: (err: Error) => void;
  private readonly done: Promise<Uint8Array[]>;

  constructor() {
    super();
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.done.catch(() => undefined);
  }

  private failure: Error | undefined;

  /** Records why the message is refused, as a SEALDROP_E_VALIDATION error. */
  private failWith(err: Error): void {
    this.failure = fail('SEALDROP_E_VALIDATION', `not an OpenPGP message sealdrop can store: ${err.message}`);
    this.reject(this.failure);
  }

  /** The PKESK packets (whole, header included) found before the encrypted data. */
  pkesks(): Promise<Uint8Array[]> {
    return this.done;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.found) {
      cb(null, chunk);
      return;
    }
    this.head.push(chunk);
    this.headBytes += chunk.length;
    let split: { pkesks: Uint8Array[]; dataOffset: number } | null;
    const buf = Buffer.concat(this.head, this.headBytes);
    try {
      split = splitHead(buf);
    } catch (err) {
      this.failWith(err as Error);
      cb(this.failure);
      return;
    }
    if (!split) {
      if (this.headBytes > MAX_HEAD) {
        this.failWith(new OpenPgpPacketError('no encrypted data packet within the first 64 KiB'));
        cb(this.failure);
        return;
      }
      this.head = [buf];
      cb();
      return;
    }
    this.found = split.pkesks;
    this.head = [];
    this.resolve(split.pkesks);
    cb(null, buf.subarray(split.dataOffset));
  }

  override _flush(cb: TransformCallback): void {
    if (!this.found) {
      this.failWith(new OpenPgpPacketError('the message ended before its encrypted data packet'));
      cb(this.failure);
      return;
    }
    cb();
  }
}

/**
 * Parses PKESK and marker packets from the front of `buf`. Returns null if more bytes are
 * needed; throws if the first other packet is not a SEIPDv1 packet or there is no PKESK.
 */
function splitHead(buf: Buffer): { pkesks: Uint8Array[]; dataOffset: number } | null {
  const pkesks: Uint8Array[] = [];
  let off = 0;
  for (;;) {
    if (off >= buf.length) return null;
    let header;
    try {
      header = readPacketHeader(buf, off);
    } catch (err) {
      if (buf.length - off < 6) return null; // a header is at most 6 bytes
      throw err;
    }
    if (header.tag === TAG_PKESK || header.tag === TAG_MARKER) {
      if (typeof header.bodyLength !== 'number') throw new OpenPgpPacketError('a session-key packet must have a definite length');
      const end = off + header.headerLength + header.bodyLength;
      if (end > buf.length) return null;
      if (header.tag === TAG_PKESK) pkesks.push(Uint8Array.from(buf.subarray(off, end)));
      off = end;
      continue;
    }
    if (header.tag !== TAG_SEIPD) throw new OpenPgpPacketError(`expected encrypted data (packet 18), found packet ${header.tag}`);
    if (off + header.headerLength >= buf.length) return null;
    const version = buf[off + header.headerLength];
    if (version !== 1) throw new OpenPgpPacketError(`only SEIPD version 1 is accepted (GnuPG 2.2 compatibility), found version ${version}`);
    if (pkesks.length === 0) throw new OpenPgpPacketError('the message has no public-key encrypted session key');
    return { pkesks, dataOffset: off };
  }
}
