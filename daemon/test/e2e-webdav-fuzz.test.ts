/**
 * Hostile WebDAV traffic against the real daemon: a few thousand malformed requests (bad XML,
 * If/Depth/Destination/Overwrite/Timeout garbage, huge declared lengths, traversal paths, odd
 * methods), authenticated so they reach the deep code paths. The daemon must never crash or
 * stall, never answer 500 without logging an error code, and keep its memory bounded.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api } from './support/api.ts';
import { runCli, sandbox, startDaemonProcess, type DaemonProcess, type Sandbox } from './support/daemon-process.ts';

const PW = 'dav fuzz password 1';
const AUTH = `Basic ${Buffer.from(`alice@example.org:${PW}`).toString('base64')}`;

let sb: Sandbox;
let daemon: DaemonProcess;

/** A deterministic pseudo-random source, so a failure can be replayed from its seed. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
  return { next, pick: <T>(a: readonly T[]): T => a[Math.floor(next() * a.length)] as T, int: (n: number) => Math.floor(next() * n) };
}

const METHODS = ['PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'PUT', 'GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST', 'TRACE', 'SEARCH', 'X-MS-ENUMATTS', 'propfind'];
const PATHS = [
  '/dav/',
  '/dav/drop/',
  '/dav/drop/f.txt',
  '/dav/drop/d/',
  '/dav/drop/d/sub/x.bin',
  '/dav/outbox/bob@example.org/a.txt',
  '/dav/outbox/not-an-address/x',
  '/dav/inbox/',
  '/dav/inbox/2026-01-01 x [deadbeef]/f.pgp',
  '/dav/../../etc/passwd',
  '/dav/%2e%2e/%2e%2e/etc/passwd',
  '/dav/drop/%2F..%2Fx',
  '/dav/drop/%00x',
  '/dav/%ZZ',
  '/dav/drop/%E0%A4%A',
  '/dav/drop/a#frag',
  '/dav/drop/..%5c..%5cwin.ini',
  '/dav/drop/' + 'a/'.repeat(300),
  '/dav/drop/' + 'x'.repeat(2000),
  '/dav/drop/\u00e4\u20ac\ud83d\ude00.txt',
  '/dav',
  '/davx/',
];
const XML = [
  '',
  'not xml at all <<<',
  '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
  '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><Z:x xmlns:Z="urn:z"/><D:getetag/></D:prop></D:propfind>',
  '<D:propfind xmlns:D="DAV:"><D:prop>',
  '<D:propfind xmlns:D="DAV:" xmlns:bad=""><D:allprop/></D:propfind>',
  '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><D:propfind xmlns:D="DAV:">&lol2;</D:propfind>',
  `<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:deep>${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}</Z:deep></D:prop></D:set></D:propertyupdate>`,
  '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a>1</Z:a></D:prop></D:set><D:remove><D:prop><Z:a/></D:prop></D:remove><D:set><D:prop><Z:b>2</Z:b></D:prop></D:set></D:propertyupdate>',
  '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:getetag>x</D:getetag></D:prop></D:set></D:propertyupdate>',
  '<D:propertyupdate xmlns:D="DAV:"><D:set/></D:propertyupdate>',
  '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>me</D:href></D:owner></D:lockinfo>',
  '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:weird/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>',
  '<D:lockinfo xmlns:D="DAV:"><D:lockscope/></D:lockinfo>',
  '{"json": true}',
  '\u0000\u0001\u0002',
];
const HEADERS: Array<[string, string[]]> = [
  ['Depth', ['0', '1', 'infinity', 'banana', '-1', '2', '', '1,1', '99999999999999999999']],
  ['If', ['(<opaquelocktoken:00000000-0000-0000-0000-000000000000>)', '(Not <DAV:no-lock>)', '((((<<<>>>', '<http://[::1> (<urn:x>)', '</../../x> (<urn:x>)', '(["etag"])', '(<a> [W/"b"]) (Not <c>)', ')(', '<x>', '(' + '<t>'.repeat(200) + ')', '(Not)', '([unterminated)']],
  ['Destination', ['/dav/drop/g.txt', 'http://127.0.0.1/dav/drop/g.txt', 'http://evil.example/dav/x', ':::://??##', '/dav/%ZZ', '/etc/passwd', '/dav/../../etc', '/dav/inbox/x', '']],
  ['Overwrite', ['T', 'F', 'maybe', '', 't']],
  ['Timeout', ['Second-600', 'Infinite', 'Second-xyz, Infinite, ,,, -5', 'Second-99999999999999999', 'Second--1']],
  ['Lock-Token', ['<opaquelocktoken:x>', 'garbage', '<>', '<' + 'a'.repeat(5000) + '>']],
  ['Content-Range', ['bytes 0-5/10', 'garbage']],
  ['Range', ['bytes=0-5', 'bytes=9999999-', 'bytes=-0', 'bytes=5-1', 'bytes=a-b', 'bytes=0-1,2-3']],
  ['X-Expected-Entity-Length', ['5', '99999999999999', '-1', 'x']],
];

interface Sent {
  status: number;
  ms: number;
}

/** Sends one raw HTTP request; resolves with the status (0: connection closed without one). */
function send(port: number, head: string, body: Buffer, timeoutMs = 15_000): Promise<Sent> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to:\n${head.slice(0, 400)}`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) socket.destroy();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      resolve({ status: m ? Number(m[1]) : 0, ms: Date.now() - started });
    });
    socket.write(head);
    socket.end(body);
  });
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

beforeAll(async () => {
  sb = sandbox({ SEALDROP_SFTP__ENABLED: 'false', SEALDROP_DROP_FOLDERS: '[{name: drop, owner: alice@example.org, recipients: [bob@example.org], level: 3}]' });
  const r = await runCli(sb, ['account', 'add', '--email', 'alice@example.org', '--role', 'member', '--password-stdin'], PW);
  expect(r.code, r.stderr).toBe(0);
  daemon = await startDaemonProcess(sb);
  await (await new Api(daemon.url).login('alice@example.org', PW)).ok('POST', '/api/v1/secupass', { secupass: 'alice secupass long' }, 201);
});

afterAll(async () => {
  await daemon?.stop();
  sb?.remove();
});

describe('WebDAV under hostile traffic', () => {
  it('survives thousands of malformed requests: no crash, no stall, no unexplained 500, bounded memory', { timeout: 300_000 }, async () => {
    const pid = daemon.child.pid as number;
    const seed = Number(process.env.SEALDROP_FUZZ_SEED ?? 20261129);
    const count = Number(process.env.SEALDROP_FUZZ_COUNT ?? 3000);
    const r = rng(seed);
    // Something to act on: a folder and a file.
    await send(daemon.port, `MKCOL /dav/drop/d/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${AUTH}\r\nContent-Length: 0\r\n\r\n`, Buffer.alloc(0));
    await send(daemon.port, `PUT /dav/drop/f.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${AUTH}\r\nContent-Length: 5\r\n\r\n`, Buffer.from('hello'));
    const before = rssMb(pid);
    let peak = before;
    const statuses = new Map<number, number>();
    let slowest = 0;
    const one = async (i: number) => {
      const method = r.pick(METHODS);
      const path = r.pick(PATHS);
      let body: Buffer = Buffer.from(r.pick(XML));
      if (r.next() < 0.1) body = randomBytes(r.int(4096));
      const headers: string[] = [];
      for (const [name, values] of HEADERS) if (r.next() < 0.15) headers.push(`${name}: ${r.pick(values)}`);
      if (r.next() < 0.9) headers.push(`Authorization: ${r.next() < 0.95 ? AUTH : 'Basic ' + r.pick(['', '!!!', 'Og==', Buffer.from('a:b').toString('base64')])}`);
      // Declared lengths: true, huge (with a short body), or chunked.
      const mode = r.next();
      let declared: string;
      if (mode < 0.7) declared = `Content-Length: ${body.length}`;
      else if (mode < 0.85) declared = `Content-Length: ${r.pick(['1000000000000', String(512 * 1024 * 1024), '99999999999999999999', '-5', 'abc'])}`;
      else {
        declared = 'Transfer-Encoding: chunked';
        body = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
      }
      const head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${daemon.port}\r\n${declared}\r\n${headers.join('\r\n')}${headers.length ? '\r\n' : ''}\r\n`;
      const res = await send(daemon.port, head, body);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      slowest = Math.max(slowest, res.ms);
      if (i % 100 === 0) peak = Math.max(peak, rssMb(pid));
    };
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < count) await one(next++);
      }),
    );
    peak = Math.max(peak, rssMb(pid));
    // Still alive and answering.
    expect(daemon.child.exitCode).toBeNull();
    expect((await fetch(`${daemon.url}/healthz`)).status).toBe(200);
    const ok = await send(daemon.port, `PROPFIND /dav/drop/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${AUTH}\r\nDepth: 1\r\nContent-Length: 0\r\n\r\n`, Buffer.alloc(0));
    expect(ok.status).toBe(207);
    // Every 500 was logged with an error code.
    const lines = daemon.output().split('\n').filter((l) => l.includes('"status":500'));
    expect(lines.filter((l) => !/"code":"SEALDROP_E_[A-Z_]+"/.test(l))).toEqual([]);
    const summary = JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])));
    if (process.env.SEALDROP_FUZZ_VERBOSE) process.stderr.write(`statuses ${summary}; RSS ${before.toFixed(0)} → ${peak.toFixed(0)} MB; slowest ${slowest} ms\n`);
    expect(statuses.get(500) ?? 0, summary).toBe(0);
    expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(count);
    // Memory stays bounded (no buffer sized from a declared length).
    expect(peak - before, `RSS ${before.toFixed(0)} → ${peak.toFixed(0)} MB; statuses ${summary}`).toBeLessThan(150);
    expect(slowest).toBeLessThan(15_000);
  });
});
