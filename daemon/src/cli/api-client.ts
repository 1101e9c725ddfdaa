/**
 * The client side of the `sealdrop` command: talks to a running daemon's /api/v1 with an API
 * token, streams uploads and downloads, reads the token and the SecuPass from files, the
 * environment or a prompt (never from the command line), and draws progress on a terminal.
 */
import { readFileSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { EXIT, exitCodeFor, type ExitCode } from './exit.ts';

/** A failure the client reports with a code, a message and an exit code. */
export class ClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exit: ExitCode,
  ) {
    super(message);
  }
}

/** Where the client connects and with which token. */
export interface ClientOptions {
  server?: string | undefined;
  tokenFile?: string | undefined;
}

const DEFAULT_SERVER = 'http://127.0.0.1:8080';

/** A minimal /api/v1 client. */
export class ApiClient {
  readonly base: URL;

  private constructor(
    base: URL,
    private readonly token: string,
  ) {
    this.base = base;
  }

  /** Builds a client from --server/--token-file and SEALDROP_SERVER, SEALDROP_TOKEN_FILE, SEALDROP_TOKEN. */
  static fromOptions(o: ClientOptions, warn: (msg: string) => void): ApiClient {
    const raw = o.server ?? process.env.SEALDROP_SERVER ?? DEFAULT_SERVER;
    let base: URL;
    try {
      base = new URL(raw);
    } catch {
      throw new ClientError('USAGE', `--server: "${raw}" is not a URL`, EXIT.usage);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new ClientError('USAGE', '--server must be an http:// or https:// URL', EXIT.usage);
    if (base.protocol === 'http:' && !isLoopback(base.hostname)) warn(`warning: ${base.origin} is not encrypted in transit; use https:// for a server on another machine`);
    return new ApiClient(base, readToken(o.tokenFile, warn));
  }

  private url(path: string): URL {
    return new URL(`${this.base.pathname.replace(/\/$/, '')}/api/v1${path}`, this.base);
  }

  /** Sends a request; throws ClientError for transport failures and error replies. */
  async request(method: string, path: string, init: { json?: unknown; body?: Readable; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'application/json', ...init.headers };
    let body: BodyInit | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.body) {
      body = Readable.toWeb(init.body) as unknown as BodyInit;
    }
    let res: Response;
    try {
      res = await fetch(this.url(path), { method, headers, body, ...(init.body ? { duplex: 'half' } : {}), redirect: 'error' } as RequestInit);
    } catch (err) {
      throw networkError(this.base, err);
    }
    if (!res.ok) throw await replyError(res);
    return res;
  }

  /** A JSON request and its parsed reply. */
  async json<T>(method: string, path: string, json?: unknown): Promise<T> {
    const res = await this.request(method, path, json === undefined ? {} : { json });
    if (res.status === 204) return undefined as T;
    try {
      return (await res.json()) as T;
    } catch (err) {
      throw new ClientError('SEALDROP_E_PROTOCOL', `the server's reply is not JSON (${(err as Error).message}); is --server a sealdrop daemon?`, EXIT.network);
    }
  }
}

/** The body of a response as a Node stream. */
export function bodyOf(res: Response): Readable {
  if (!res.body) return Readable.from([]);
  return Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
}

/** A transport failure as a ClientError with the network exit code. */
export function networkError(base: URL, err: unknown): ClientError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message ?? (err as Error).message;
  return new ClientError('SEALDROP_E_NETWORK', `cannot reach ${base.origin}: ${detail}`, EXIT.network);
}

async function replyError(res: Response): Promise<ClientError> {
  let code = `HTTP_${res.status}`;
  let message = res.statusText || 'request failed';
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // not a sealdrop error body
  }
  const exit = code.startsWith('SEALDROP_E_') ? exitCodeFor(code) : res.status === 401 || res.status === 403 ? EXIT.auth : res.status === 404 ? EXIT.notFound : res.status >= 500 ? EXIT.network : EXIT.failure;
  return new ClientError(code, message, exit);
}

function readToken(file: string | undefined, warn: (msg: string) => void): string {
  const path = file ?? process.env.SEALDROP_TOKEN_FILE;
  let token: string | undefined;
  if (path) {
    token = readSecretFile(path, 'token', warn);
  } else {
    token = process.env.SEALDROP_TOKEN?.trim();
  }
  if (!token) throw new ClientError('USAGE', 'no API token: give --token-file FILE or set SEALDROP_TOKEN_FILE or SEALDROP_TOKEN (create one with "sealdrop token create" on the server or in the web UI)', EXIT.usage);
  if (!/^[\x21-\x7e]{16,512}$/.test(token)) throw new ClientError('USAGE', 'the API token is malformed (expected one line like sda_...)', EXIT.usage);
  return token;
}

/** Reads a secret from a file (first line, trimmed), warning when others may read the file. */
export function readSecretFile(path: string, what: string, warn: (msg: string) => void): string {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > 64 * 1024) throw new Error('larger than 64 KiB');
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) warn(`warning: the ${what} file ${path} is readable by others (chmod 600 it)`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ClientError('USAGE', `cannot read the ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT.usage);
  }
  return text.replace(/\r?\n[\s\S]*$/, '').trim();
}

/**
 * The SecuPass: --secupass-file, SEALDROP_SECUPASS_FILE, SEALDROP_SECUPASS, or a prompt without
 * echo when standard input is a terminal. Never a command-line argument (visible in `ps`).
 */
export async function readSecupass(file: string | undefined, warn: (msg: string) => void): Promise<string> {
  const path = file ?? process.env.SEALDROP_SECUPASS_FILE;
  let value: string | undefined;
  if (path) value = readSecretFile(path, 'SecuPass', warn);
  else if (process.env.SEALDROP_SECUPASS) value = process.env.SEALDROP_SECUPASS;
  else if (process.stdin.isTTY && process.stderr.isTTY) value = await prompt('SecuPass: ');
  if (!value) throw new ClientError('USAGE', 'no SecuPass: give --secupass-file FILE, set SEALDROP_SECUPASS_FILE or SEALDROP_SECUPASS, or run on a terminal to be asked', EXIT.usage);
  return value;
}

/** Asks on the terminal without echoing what is typed. */
function prompt(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const finish = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new ClientError('USAGE', 'cancelled', EXIT.usage));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Progress of one transfer on standard error, only when it is a terminal. */
export class Progress {
  private done = 0;
  private last = 0;
  private readonly started = Date.now();

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    private readonly enabled: boolean,
  ) {}

  add(n: number): void {
    this.done += n;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100) return;
    this.last = now;
    this.draw();
  }

  finish(): void {
    if (!this.enabled) return;
    this.draw();
    process.stderr.write('\n');
  }

  private draw(): void {
    const secs = Math.max(0.001, (Date.now() - this.started) / 1000);
    const rate = `${(this.done / secs / 1e6).toFixed(1)} MB/s`;
    const width = 24;
    let bar = '';
    if (this.total) {
      const frac = Math.min(1, this.done / this.total);
      const filled = Math.round(frac * width);
      bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}% `;
    }
    const name = this.label.length > 30 ? `…${this.label.slice(-29)}` : this.label.padEnd(30);
    process.stderr.write(`\r${name} ${bar}${formatBytes(this.done)} ${rate}   `);
  }
}

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
