/**
 * Secret tokens: 256-bit random values shown to their holder once and stored only as SHA-256
 * hashes. The prefix says what a token is for, so a leaked one is recognisable in a scan.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Token kinds and their prefixes. */
export const TOKEN_PREFIX = {
  session: 'sds_',
  ui: 'sdu_',
  api: 'sdt_',
  invitation: 'sdi_',
  password_reset: 'sdr_',
  link: 'sdl_',
} as const;

/** A token kind. */
export type TokenKind = keyof typeof TOKEN_PREFIX;

/** A fresh random token of that kind (prefix + 43 base64url characters). */
export function newToken(kind: TokenKind): string {
  return TOKEN_PREFIX[kind] + randomBytes(32).toString('base64url');
}

/** The hex SHA-256 under which a token is stored and looked up. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** True if `token` has the shape of a token of that kind (cheap pre-check before any lookup). */
export function looksLikeToken(token: unknown, kind: TokenKind): token is string {
  return typeof token === 'string' && token.length === TOKEN_PREFIX[kind].length + 43 && token.startsWith(TOKEN_PREFIX[kind]) && /^[A-Za-z0-9_-]+$/.test(token.slice(4));
}

/** Constant-time comparison of two hex digests (or any two strings of equal length). */
export function safeEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}
