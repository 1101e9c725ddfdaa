import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { detachedBody } from './body.ts';

describe('detachedBody', () => {
  it('fails at once for a client that went away while the request waited', async () => {
    let settle: (outcome: string) => void = () => undefined;
    const outcome = new Promise<string>((resolve) => (settle = resolve));
    const server = http.createServer((req) => {
      // As if authentication and the database took a while: the client is gone meanwhile.
      req.socket.once('close', () => {
        setTimeout(() => {
          const body = detachedBody(req);
          // The consumer comes later (after more awaits): the error waits for it, unhandled by nobody.
          setTimeout(() => {
            pipeline(body, new Writable({ write: (_c, _e, cb) => cb() })).then(
              () => settle('end'),
              (err: Error & { code?: string }) => settle(`error ${err.code}`),
            );
          }, 100);
          setTimeout(() => settle('nothing within 2 s'), 2000).unref();
        }, 50);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const req = http.request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, method: 'PUT', path: '/', headers: { 'content-length': '1000000' } });
      req.on('error', () => undefined);
      req.write(Buffer.alloc(1000), () => setTimeout(() => req.destroy(), 50));
      expect(await outcome).toBe('error SEALDROP_E_ABORTED');
    } finally {
      server.close();
    }
  });
});
