/**
 * Unit tests of the openpgp.js partial-body-length framing emulation (end-to-end byte identity
 * with openpgp.js is covered by seipd-v1.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { encodePartialLength, encodeSimpleLength, PartialLengthFramer, partialLengthPower } from './partial-length.ts';

function hex(pieces: readonly Uint8Array[] | null): string | null {
  return pieces === null ? null : Buffer.concat(pieces).toString('hex');
}

function lengths(pieces: readonly Uint8Array[] | null): number | null {
  return pieces === null ? null : pieces.reduce((sum, piece) => sum + piece.length, 0);
}

describe('length encodings', () => {
  it('encodeSimpleLength uses 1, 2 and 5 octets at the openpgp.js boundaries', () => {
    expect(Buffer.from(encodeSimpleLength(0)).toString('hex')).toBe('00');
    expect(Buffer.from(encodeSimpleLength(191)).toString('hex')).toBe('bf');
    expect(Buffer.from(encodeSimpleLength(192)).toString('hex')).toBe('c000');
    expect(Buffer.from(encodeSimpleLength(8383)).toString('hex')).toBe('dfff');
    expect(Buffer.from(encodeSimpleLength(8384)).toString('hex')).toBe('ff000020c0');
    expect(Buffer.from(encodeSimpleLength(0xffffffff)).toString('hex')).toBe('ffffffffff');
    expect(() => encodeSimpleLength(-1)).toThrow(RangeError);
    expect(() => encodeSimpleLength(2 ** 32)).toThrow(RangeError);
    expect(() => encodeSimpleLength(1.5)).toThrow(RangeError);
  });

  it('encodePartialLength and partialLengthPower', () => {
    expect(encodePartialLength(9)).toEqual(Uint8Array.of(0xe9));
    expect(encodePartialLength(30)).toEqual(Uint8Array.of(0xfe));
    expect(() => encodePartialLength(31)).toThrow(RangeError);
    expect(partialLengthPower(512)).toBe(9);
    expect(partialLengthPower(1023)).toBe(9);
    expect(partialLengthPower(1024)).toBe(10);
    expect(partialLengthPower(2 ** 40)).toBe(30);
    for (let power = 9; power <= 30; power += 1) {
      expect(partialLengthPower(2 ** power)).toBe(power);
      expect(partialLengthPower(2 ** power - 1)).toBe(power - 1);
    }
  });
});

describe('PartialLengthFramer', () => {
  it('holds data until 512 bytes are buffered, then emits one power-of-two part', () => {
    const framer = new PartialLengthFramer();
    expect(framer.push(new Uint8Array(300))).toBeNull();
    expect(framer.push(new Uint8Array(211))).toBeNull();
    expect(framer.bufferedLength).toBe(511);
    const part = framer.push(new Uint8Array(1000)); // 1511 buffered -> 1024 out
    expect(part?.[0]).toEqual(Uint8Array.of(0xea));
    expect(lengths(part)).toBe(1 + 1024);
    expect(framer.bufferedLength).toBe(487);
    const last = framer.end();
    expect(last[0]).toEqual(Uint8Array.of(0xc1, 0x27)); // 487 = 192 + 0x127
    expect(lengths(last)).toBe(2 + 487);
  });

  it('emits at most one part per chunk; an empty chunk releases the next one', () => {
    const framer = new PartialLengthFramer();
    expect(lengths(framer.push(new Uint8Array(3000)))).toBe(1 + 2048); // 952 left
    expect(framer.bufferedLength).toBe(952);
    expect(lengths(framer.push(new Uint8Array(0)))).toBe(1 + 512); // 440 left
    expect(framer.push(new Uint8Array(0))).toBeNull();
    expect(lengths(framer.end())).toBe(2 + 440);
  });

  it('keeps byte order across pieces and treats a piece list as one chunk', () => {
    const framer = new PartialLengthFramer();
    const data = Uint8Array.from({ length: 700 }, (_, i) => i & 0xff);
    expect(framer.push([data.subarray(0, 100), data.subarray(100, 300)])).toBeNull();
    const part = framer.push([data.subarray(300, 650), new Uint8Array(0), data.subarray(650)]);
    expect(hex(part)).toBe(`e9${Buffer.from(data.subarray(0, 512)).toString('hex')}`);
    expect(hex(framer.end())).toBe(`bc${Buffer.from(data.subarray(512)).toString('hex')}`);
  });

  it('returns views, never copies', () => {
    const framer = new PartialLengthFramer();
    const data = new Uint8Array(600);
    const part = framer.push(data) ?? [];
    expect(part[1]?.buffer).toBe(data.buffer);
    expect(framer.end()[1]?.buffer).toBe(data.buffer);
  });

  it('detach() copies what is held back, so the pushed arrays may change or move afterwards', () => {
    const data = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff);
    const expected = new PartialLengthFramer();
    const keep = [hex(expected.push(data.slice(0, 100))), hex(expected.push(data.slice(100))), hex(expected.end())];
    const framer = new PartialLengthFramer();
    const first = data.slice(0, 100);
    expect(framer.push(first)).toBeNull();
    framer.detach();
    first.fill(0xff); // reused by its owner
    const second = data.slice(100);
    const part = hex(framer.push(second)); // hashed or encrypted at once, before the array moves
    framer.detach();
    second.fill(0xee);
    expect([part, hex(framer.end())]).toEqual([keep[1], keep[2]]);
    expect(keep[0]).toBeNull();
  });

  it('an empty body ends with the single octet 0x00', () => {
    expect(hex(new PartialLengthFramer().end())).toBe('00');
  });

  it('refuses use after end', () => {
    const framer = new PartialLengthFramer();
    framer.end();
    expect(() => framer.push(new Uint8Array(1))).toThrow(/after end/);
    expect(() => framer.end()).toThrow(/twice/);
  });
});
