/** A small JSON client for the sealdrop HTTP API in tests (fetch), plus curl for streamed files. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'vitest';

const run = promisify(execFile);

/** A response: status and parsed JSON (or text). */
export interface Reply<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

/** API client bound to a base URL and optionally a bearer token. */
export class Api {
  constructor(
    readonly base: string,
    readonly token?: string,
  ) {}

  /** The same client with another bearer token. */
  as(token: string): Api {
    return new Api(this.base, token);
  }

  /** Sends a request; `body` objects go as JSON. */
  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: {
        ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        ...(body !== undefined && !(body instanceof Uint8Array) && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : body instanceof Uint8Array || typeof body === 'string' ? (body as BodyInit) : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  /** Like call() but asserts the status; returns the body. */
  async ok<T = Record<string, unknown>>(method: string, path: string, body?: unknown, status = 200): Promise<T> {
    const r = await this.call<T>(method, path, body);
    expect(r.status, `${method} ${path} -> ${JSON.stringify(r.body)}`).toBe(status);
    return r.body;
  }

  /** Asserts an error reply with that status and code. */
  async fails(method: string, path: string, body: unknown, status: number, code: string): Promise<string> {
    const r = await this.call<{ error?: { code?: string; message?: string } }>(method, path, body);
    expect({ status: r.status, code: r.body?.error?.code }, `${method} ${path} -> ${JSON.stringify(r.body)}`).toEqual({ status, code });
    expect(r.body.error?.message, 'error message').toBeTruthy();
    return r.body.error?.message as string;
  }

  /** Logs in and returns a client with the session token. */
  async login(email: string, password: string): Promise<Api> {
    const r = await this.ok<{ token: string }>('POST', '/api/v1/session', { email, password }, 201);
    return this.as(r.token);
  }
}

/** curl -T: streams a file as a PUT body; returns status and body. */
export async function curlUpload(api: Api, path: string, file: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const { stdout } = await run('curl', ['-sS', '-T', file, '-H', `Authorization: Bearer ${api.token}`, '-w', '\n%{http_code}', `${api.base}${path}`], { maxBuffer: 1 << 20 });
  const lines = stdout.trimEnd().split('\n');
  const status = Number(lines.pop());
  return { status, body: JSON.parse(lines.join('\n') || '{}') as Record<string, unknown> };
}

/** curl -o: downloads into a file; returns status and the response headers. */
export async function curlDownload(api: Api, path: string, out: string): Promise<{ status: number; headers: string }> {
  const { stdout } = await run('curl', ['-sS', '-D', '-', '-o', out, '-H', `Authorization: Bearer ${api.token}`, '-w', '%{http_code}', `${api.base}${path}`], { maxBuffer: 1 << 20 });
  const status = Number(stdout.slice(-3));
  return { status, headers: stdout.slice(0, -3) };
}
