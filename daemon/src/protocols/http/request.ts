/** Request helpers for the HTTP adapter: bounded JSON bodies, bearer authentication, the caller's address. */
import type { Context, Next } from 'koa';
import type { Core, Principal } from '../../core/index.ts';
import { fail } from '../../core/errors.ts';
import { detachedBody } from './body.ts';

/** Koa state of an authenticated API request. */
export interface ApiState {
  principal: Principal;
  bearer: string;
}

/** Reads a JSON object body of at most `limit` bytes; anything else is a clear 400/413. */
export async function readJson(ctx: Context, limit: number): Promise<Record<string, unknown>> {
  const declared = Number(ctx.get('content-length') || NaN);
  if (Number.isFinite(declared) && declared > limit) throw fail('SEALDROP_E_TOO_LARGE', `the request body exceeds ${limit} bytes`);
  const type = ctx.get('content-type');
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    if (declared === 0 || (!type && !ctx.req.readable)) return {};
    throw fail('SEALDROP_E_VALIDATION', 'the request body must be JSON (Content-Type: application/json)');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of detachedBody(ctx.req)) {
    size += (chunk as Buffer).length;
    if (size > limit) throw fail('SEALDROP_E_TOO_LARGE', `the request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw fail('SEALDROP_E_VALIDATION', 'the request body is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw fail('SEALDROP_E_VALIDATION', 'the request body must be a JSON object');
  // No field of any route means a NUL, and the database refuses it with an internal error.
  if (hasNul(parsed)) throw fail('SEALDROP_E_VALIDATION', 'strings in the request body must not contain NUL characters');
  return parsed as Record<string, unknown>;
}

/** Middleware: authenticates `Authorization: Bearer <token>` and puts the principal in ctx.state. */
export function bearerAuth(core: Core) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const header = ctx.get('authorization');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw fail('SEALDROP_E_UNAUTHENTICATED', 'send Authorization: Bearer <token> (POST /api/v1/session gives one)');
    const state = ctx.state as ApiState;
    state.bearer = match[1];
    state.principal = await core.accounts.authenticate(match[1], 'api', ctx.request.ip);
    await next();
  };
}

/** Whether a parsed JSON value holds a NUL character in a string or a key (walked without recursion). */
export function hasNul(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (v.includes('\u0000')) return true;
    } else if (Array.isArray(v)) {
      for (const x of v) stack.push(x); // not push(...v): a large array would overflow the call stack
    } else if (v !== null && typeof v === 'object') {
      for (const [k, inner] of Object.entries(v)) {
        if (k.includes('\u0000')) return true;
        stack.push(inner);
      }
    }
  }
  return false;
}

/** The authenticated principal of a request. */
export function principalOf(ctx: Context): Principal {
  return (ctx.state as ApiState).principal;
}

/** A route parameter as a string (Koa router decodes it). */
export function param(ctx: Context, name: string): string {
  const value = (ctx as unknown as { params?: Record<string, string> }).params?.[name];
  if (typeof value !== 'string') throw fail('SEALDROP_E_VALIDATION', `missing ${name}`);
  return value;
}

/** `attachment; filename=...` with an ASCII fallback and the UTF-8 name (RFC 6266 / 5987). */
export function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}
