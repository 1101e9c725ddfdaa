import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { SizeLimit } from './uploads.ts';

describe('SizeLimit', () => {
  it('resolves room() when the consumer drains the buffer, with no further write', async () => {
    // The second chunk fills the readable side (1 MiB): its write completes only when the
    // consumer reads. A protocol that stopped reading its client (SFTP above its share) writes
    // nothing more, so room() must resolve from that completion alone.
    const limit = new SizeLimit(1e9);
    limit.write(Buffer.alloc(600_000));
    limit.write(Buffer.alloc(600_000));
    let resolved = false;
    const room = limit.room(0).then(() => (resolved = true));
    await tick();
    expect(limit.writableLength).toBe(600_000);
    expect(resolved).toBe(false);
    limit.resume();
    await Promise.race([room, sleep(2000).then(() => Promise.reject(new Error('room() did not resolve after the consumer drained the buffer')))]);
    expect(limit.writableLength).toBe(0);
  });

  it('counts bytes and fails past the limit; room() then rejects', async () => {
    const limit = new SizeLimit(1000);
    limit.resume();
    limit.write(Buffer.alloc(600));
    await limit.room(0);
    expect(limit.bytes).toBe(600);
    const failed = new Promise((resolve) => limit.once('error', resolve));
    limit.write(Buffer.alloc(600));
    expect(((await failed) as Error).message).toMatch(/exceeds the limit of 1000 bytes/);
    await expect(limit.room(0)).rejects.toThrow(/exceeds the limit/);
  });
});
