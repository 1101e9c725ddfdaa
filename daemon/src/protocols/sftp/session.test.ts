import { EventEmitter } from 'node:events';
import { setImmediate as tick } from 'node:timers/promises';
import pino from 'pino';
import type { SFTPWrapper } from 'ssh2';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../core/context.ts';
import type { Core } from '../../core/index.ts';
import { loadGc, YoungGcPacer } from '../../util/gc.ts';
import { SftpSession } from './session.ts';

const OPEN_WRITE_CREATE_TRUNCATE = 0x02 | 0x08 | 0x10;
const STATUS_OK = 0;

/** An SFTP channel as ssh2 presents it to the session: requests in, replies recorded. */
class FakeSftp extends EventEmitter {
  readonly handles = new Map<number, Buffer>();
  readonly statuses = new Map<number, number>();
  handle(reqid: number, h: Buffer): void {
    this.handles.set(reqid, Buffer.from(h));
  }
  status(reqid: number, code: number): void {
    this.statuses.set(reqid, code);
  }
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await tick();
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('SftpSession', () => {
  it("lets go of a WRITE's packet while the write waits to be acknowledged", async () => {
    const loaded = loadGc();
    if (!('collector' in loaded)) throw new Error(loaded.reason);
    const { collector } = loaded;
    // An upload that copies what it is given (as Upload.write does with staging) and accepts
    // it only when told.
    let accept: () => void = () => undefined;
    const accepted = new Promise<void>((resolve) => (accept = resolve));
    const taken: Buffer[] = [];
    const upload = { write: (data: Buffer) => (taken.push(Buffer.from(data)), accepted), copiesInput: true, holdBytes: 4 << 20, buffered: 0, room: () => Promise.resolve() };
    const core = { tree: { openWrite: async () => ({ kind: 'upload', upload, folderKey: 'k', name: 'f.bin', transferId: 't' }) } } as unknown as Core;
    const sftp = new FakeSftp();
    const pacer = new YoungGcPacer({ minor: () => undefined, major: () => undefined }, 1);
    new SftpSession(core, {} as Principal, sftp as unknown as SFTPWrapper, pino({ level: 'silent' }), undefined, undefined, pacer);

    sftp.emit('OPEN', 1, '/outbox/x@example.org/f.bin', OPEN_WRITE_CREATE_TRUNCATE, {});
    await until('the OPEN reply', () => sftp.handles.has(1));
    // As ssh2 parses it: the handle and the data are views of one packet buffer.
    let packet: Buffer | null = Buffer.alloc(256 * 1024, 7);
    (sftp.handles.get(1) as Buffer).copy(packet, 9);
    const packetMemory = new WeakRef(packet.buffer);
    sftp.emit('WRITE', 2, packet.subarray(9, 13), 0, packet.subarray(13));
    packet = null;
    await tick();
    collector.major();
    await tick();
    expect(sftp.statuses.has(2), 'not acknowledged before the upload accepts the data').toBe(false);
    expect(packetMemory.deref(), 'the packet is collectable while the WRITE waits').toBeUndefined();
    expect(pacer.collections).toBe(1);

    accept();
    await until('the WRITE reply', () => sftp.statuses.has(2));
    expect(sftp.statuses.get(2)).toBe(STATUS_OK);
    expect(taken.length).toBe(1);
    expect(taken[0]?.length).toBe(256 * 1024 - 13);
    expect(taken[0]?.every((b) => b === 7)).toBe(true);
  });

  it("gives an upload that keeps its input a copy of the WRITE data, since ssh2 reuses the packet's buffer", async () => {
    // Levels 1 and 2 (no staging): Upload.write keeps the Buffer it is given.
    const kept: Buffer[] = [];
    const upload = { write: (data: Buffer) => (kept.push(data), Promise.resolve()), copiesInput: false, holdBytes: 4 << 20, buffered: 0, room: () => Promise.resolve() };
    const core = { tree: { openWrite: async () => ({ kind: 'upload', upload, folderKey: 'k', name: 'f.bin', transferId: 't' }) } } as unknown as Core;
    const sftp = new FakeSftp();
    new SftpSession(core, {} as Principal, sftp as unknown as SFTPWrapper, pino({ level: 'silent' }));
    expect((sftp as unknown as { reuseWriteBuffer: boolean }).reuseWriteBuffer, 'the session asks ssh2 to reuse it').toBe(true);

    sftp.emit('OPEN', 1, '/outbox/x@example.org/f.bin', OPEN_WRITE_CREATE_TRUNCATE, {});
    await until('the OPEN reply', () => sftp.handles.has(1));
    const packet = Buffer.alloc(64 * 1024, 1);
    (sftp.handles.get(1) as Buffer).copy(packet, 9);
    sftp.emit('WRITE', 2, packet.subarray(9, 13), 0, packet.subarray(13));
    // ssh2 assembles the next WRITE in the same buffer.
    packet.fill(2, 13);
    await until('the WRITE reply', () => sftp.statuses.has(2));
    expect(sftp.statuses.get(2)).toBe(STATUS_OK);
    expect(kept.length).toBe(1);
    expect(kept[0]?.every((b) => b === 1), 'the upload kept the bytes of its WRITE').toBe(true);
  });
});
