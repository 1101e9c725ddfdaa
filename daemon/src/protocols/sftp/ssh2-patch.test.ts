/**
 * The parts of the ssh2 patch (daemon/patches/ssh2+1.17.0.patch) that the SFTP session relies
 * on for reusing download buffers, checked on ssh2's SFTP object with a recording channel; the
 * other parts (poly1305, WRITE assembly, channel window) checked on their own.
 */
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { generatePair } from './host-keys.ts';

const { SFTP } = createRequire(import.meta.url)('ssh2/lib/protocol/SFTP.js') as { SFTP: new (...a: unknown[]) => SftpLike };

interface SftpLike {
  data(reqid: number, data: Buffer): unknown;
  once(event: string, fn: () => void): void;
  outgoing: { window: number };
  _chunkcb: (() => void) | undefined;
}

function server(window: number) {
  const sent: Buffer[] = [];
  const client = { _protocol: { _remoteIdentRaw: 'SSH-2.0-OpenSSH_9.2', channelData: (_id: number, d: Buffer) => sent.push(Buffer.from(d)) } };
  const chan = { type: 'session', incoming: { id: 0, window: 2 ** 21, packetSize: 32768, state: 'open' }, outgoing: { id: 0, window, packetSize: 32768, state: 'open' } };
  const sftp = new SFTP(client, chan, { server: true });
  return { sftp, sent };
}

/** The bytes of an SFTP DATA reply. */
function reply(reqid: number, data: Buffer): Buffer {
  const head = Buffer.alloc(13);
  head.writeUInt32BE(9 + data.length, 0);
  head[4] = 103; // SSH_FXP_DATA
  head.writeUInt32BE(reqid, 5);
  head.writeUInt32BE(data.length, 9);
  return Buffer.concat([head, data]);
}

describe('ssh2 patch: SFTP READ replies', () => {
  it('sends a reply that fits the window at once and says so', () => {
    const { sftp, sent } = server(1 << 20);
    const data = randomBytes(100_000);
    expect(sftp.data(7, data)).toBe(true);
    expect(Buffer.concat(sent).equals(reply(7, data))).toBe(true);
  });

  it('copies what waits for window space, so the caller may reuse its buffer, and emits drain once it is sent', () => {
    const { sftp, sent } = server(40_000);
    const data = randomBytes(100_000);
    const original = Buffer.from(data);
    expect(sftp.data(8, data)).toBe(false);
    data.fill(0); // the session gives the buffer back to the pool at once; the next read overwrites it
    let drained = 0;
    sftp.once('drain', () => drained++);
    // The client opens the window (CHANNEL_WINDOW_ADJUST): ssh2 calls the SFTP object's _chunkcb.
    sftp.outgoing.window += 1 << 20;
    sftp._chunkcb?.();
    expect(drained).toBe(1);
    expect(Buffer.concat(sent).equals(reply(8, original))).toBe(true);
  });

  it('says a small reply had to wait too (it is a copy anyway)', () => {
    const { sftp, sent } = server(0);
    expect(sftp.data(9, Buffer.from('tiny'))).toBe(false);
    sftp.outgoing.window += 1 << 20;
    sftp._chunkcb?.();
    expect(Buffer.concat(sent).equals(reply(9, Buffer.from('tiny')))).toBe(true);
  });
});

describe('ssh2 patch: the WebAssembly poly1305', () => {
  it('is not loaded when the native binding does chacha20-poly1305, which still works', () => {
    // A process of its own, which loads nothing else. The module (poly1305.js) instantiates the
    // WebAssembly with 16 MiB of memory: ~4 MB of RSS.
    const script = `
      const crypto = require('ssh2/lib/protocol/crypto.js');
      crypto.init.then(() => {
        const keys = { cipherKey: Buffer.alloc(64, 7), cipherIV: Buffer.alloc(0), macKey: Buffer.alloc(0), macInfo: undefined };
        const info = crypto.CIPHER_INFO['chacha20-poly1305@openssh.com'];
        const sent = [];
        const cipher = crypto.createCipher({ outbound: { onWrite: (b) => sent.push(Buffer.from(b)), cipherInfo: info, cipherKey: keys.cipherKey, seqno: 0, forceNative: true } });
        const packet = cipher.allocPacket(5);
        packet.write('hello', 5);
        cipher.encrypt(packet);
        const got = [];
        const decipher = crypto.createDecipher({ inbound: { onPayload: (p) => got.push(Buffer.from(p).toString()), decipherInfo: info, decipherKey: keys.cipherKey, seqno: 0, forceNative: true } });
        const wire = Buffer.concat(sent);
        decipher.decrypt(wire, 0, wire.length);
        const wasm = Object.keys(require.cache).filter((f) => f.endsWith('poly1305.js'));
        console.log(JSON.stringify({ binding: crypto.bindingAvailable, wasm, got }));
      });`;
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: import.meta.dirname }).trim()) as { binding: boolean; wasm: string[]; got: string[] };
    expect(out.binding, "ssh2's native binding (built on npm install with python3, make and g++)").toBe(true);
    expect(out.wasm).toEqual([]);
    expect(out.got).toEqual(['hello']);
  });
});

describe('ssh2 patch: WRITE assembly', () => {
  /** An SFTP WRITE request as the client sends it. */
  function writePacket(reqid: number, handle: Buffer, offset: number, data: Buffer): Buffer {
    const head = Buffer.alloc(4 + 1 + 4 + 4 + handle.length + 8 + 4);
    let p = head.writeUInt32BE(head.length - 4 + data.length, 0);
    p = head.writeUInt8(6, p); // SSH_FXP_WRITE
    p = head.writeUInt32BE(reqid, p);
    p = head.writeUInt32BE(handle.length, p);
    p += handle.copy(head, p);
    p = head.writeBigUInt64BE(BigInt(offset), p);
    head.writeUInt32BE(data.length, p);
    return Buffer.concat([head, data]);
  }

  const digest = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

  /** Feeds `bytes` to the SFTP parser in pieces of `piece` bytes, as channel data arrives. */
  function feed(sftp: unknown, bytes: Buffer, piece: number): void {
    const push = (sftp as { push(data: Buffer): void }).push.bind(sftp);
    for (let p = 0; p < bytes.length; p += piece) push(Buffer.from(bytes.subarray(p, p + piece)));
  }

  function writes(reuse: boolean) {
    const { sftp } = server(1 << 20);
    (sftp as unknown as { reuseWriteBuffer: boolean }).reuseWriteBuffer = reuse;
    const seen: Array<{ reqid: number; handle: string; offset: number; data: string; memory: ArrayBufferLike }> = [];
    (sftp as unknown as NodeJS.EventEmitter).on('WRITE', (reqid: number, handle: Buffer, offset: number, data: Buffer) => {
      seen.push({ reqid, handle: handle.toString('hex'), offset, data: digest(data), memory: data.buffer });
    });
    feed(sftp, Buffer.from([0, 0, 0, 5, 1, 0, 0, 0, 3]), 9); // SSH_FXP_INIT, version 3
    const handle = Buffer.from([0, 0, 0, 1]);
    const chunks = [randomBytes(200_000), randomBytes(200_000), randomBytes(100_000)];
    let offset = 0;
    const expected = chunks.map((data, i) => {
      const e = { reqid: 10 + i, handle: handle.toString('hex'), offset, data: digest(data) };
      feed(sftp, writePacket(10 + i, handle, offset, data), 32_768);
      offset += data.length;
      return e;
    });
    return { seen, expected };
  }

  it('assembles each WRITE that arrives in pieces in one reused buffer when asked, with every byte right', () => {
    const { seen, expected } = writes(true);
    expect(seen.map(({ memory: _m, ...w }) => w)).toEqual(expected);
    // Compared as booleans: a failing comparison of two ArrayBuffers prints them whole.
    expect(seen[1]?.memory === seen[0]?.memory, "the second WRITE reuses the first one's buffer").toBe(true);
    expect(seen[2]?.memory === seen[0]?.memory, 'and so does the third').toBe(true);
  });

  it('gives each WRITE a buffer of its own by default', () => {
    const { seen, expected } = writes(false);
    expect(seen.map(({ memory: _m, ...w }) => w)).toEqual(expected);
    expect(seen[1]?.memory === seen[0]?.memory).toBe(false);
  });
});

describe('ssh2 patch: channel window', () => {
  it('gives a client 3 MiB of window on a session channel, and refills it once half of it is used', async () => {
    // Not ssh2's generator as is: 1 ed25519 key in ~256 does not parse (mscdex/ssh2#1513).
    const hostKey = generatePair('ed25519', {}).private;
    const server = new ssh2.Server({ hostKeys: [hostKey] }, (client) => {
      client.on('authentication', (ctx) => ctx.accept());
      client.on('session', (accept) => {
        accept().on('exec', (acceptExec) => {
          const stream = acceptExec();
          stream.on('data', () => undefined);
          stream.on('end', () => {
            stream.exit(0);
            stream.end();
          });
        });
      });
      client.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const conn = new ssh2.Client();
    try {
      const windows = await new Promise<number[]>((resolve, reject) => {
        conn.on('error', reject).on('ready', () => {
          conn.exec('x', (err, channel) => {
            if (err) return reject(err);
            const outgoing = (channel as unknown as { outgoing: { window: number } }).outgoing;
            const opened = outgoing.window;
            // Send 2 MiB: the server refills the window once half of it is used.
            channel.resume();
            channel.end(Buffer.alloc(2 * 1024 * 1024));
            channel.on('close', () => resolve([opened, outgoing.window]));
          });
        });
        conn.connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, username: 'u', password: 'p' });
      });
      expect(windows[0]).toBe(3 * 1024 * 1024);
      expect(windows[1]).toBeGreaterThan(2 * 1024 * 1024);
    } finally {
      conn.end();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('ssh2 patch file', () => {
  it('changes source files only: build output differs per machine and makes npm ci fail to apply it', () => {
    const patch = readFileSync(new URL('../../../patches/ssh2+1.17.0.patch', import.meta.url), 'utf8');
    const files = [...patch.matchAll(/^diff --git a\/(\S+)/gm)].map((m) => m[1]);
    expect(files).toEqual(['node_modules/ssh2/lib/Channel.js', 'node_modules/ssh2/lib/protocol/SFTP.js', 'node_modules/ssh2/lib/protocol/crypto.js']);
  });
});
