import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { decryptSeipdV2, encryptSeipdV2, Kek, newKey } from './at-rest.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-kek-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

describe('Kek', () => {
  it('generates a key file with mode 0600 once and reads it back', async () => {
    const file = path.join(dir, 'sub', 'kek');
    const generated: string[] = [];
    const a = await Kek.load(file, (f) => generated.push(f));
    const b = await Kek.load(file, (f) => generated.push(f));
    expect(generated).toEqual([file]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const sealed = a.seal('message', Buffer.from('hello'), 'ctx');
    expect(b.open('message', sealed, 'ctx').toString()).toBe('hello');
  });

  it('refuses a malformed key file', async () => {
    const file = path.join(dir, 'bad');
    writeFileSync(file, 'not hex');
    await expect(Kek.load(file, () => undefined)).rejects.toThrow(/64 hex digits/);
  });

  it('binds purpose and context and detects tampering', () => {
    const kek = Kek.fromBytes(randomBytes(32));
    const sealed = kek.seal('outbox', Buffer.from('secret'), 'row-1');
    expect(() => kek.open('outbox', sealed, 'row-2')).toThrow(/integrity/);
    expect(() => kek.open('message', sealed, 'row-1')).toThrow(/integrity/);
    const bad = Buffer.from(sealed);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
    expect(() => kek.open('outbox', bad, 'row-1')).toThrow(/integrity/);
    expect(readFileSync.length).toBeGreaterThan(0);
  });
});

describe('SEIPDv2 at rest', () => {
  it('round-trips a multi-chunk stream and detects a flipped bit', async () => {
    const key = newKey();
    const data = randomBytes(9 * 1024 * 1024 + 123);
    const ct = await readAll(await encryptSeipdV2(Readable.from([data.subarray(0, 5000), data.subarray(5000)]), key));
    expect(ct.length).toBeGreaterThan(data.length);
    expect(ct.includes(data.subarray(0, 64))).toBe(false);
    const pt = await readAll(await decryptSeipdV2(Readable.from([ct]), key));
    expect(pt.equals(data)).toBe(true);
    const tampered = Buffer.from(ct);
    const at = Math.floor(tampered.length / 2);
    tampered[at] = (tampered[at] ?? 0) ^ 0x01;
    await expect(async () => readAll(await decryptSeipdV2(Readable.from([tampered]), key))).rejects.toThrow();
  });

  it('round-trips an empty stream', async () => {
    const key = newKey();
    const ct = await readAll(await encryptSeipdV2(Readable.from([]), key));
    expect((await readAll(await decryptSeipdV2(Readable.from([ct]), key))).length).toBe(0);
  });
});
