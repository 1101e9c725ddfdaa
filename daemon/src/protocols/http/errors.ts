/** Maps core error codes to HTTP statuses and writes the JSON error body. */
import type { Context } from 'koa';
import type { Logger } from 'pino';
import { ERROR_CODES, SealdropError, type ErrorCode } from '../../core/errors.ts';

/** HTTP status of each core error code. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  SEALDROP_E_VALIDATION: 400,
  SEALDROP_E_INVALID_EMAIL: 400,
  SEALDROP_E_INVALID_NAME: 400,
  SEALDROP_E_PASSWORD_POLICY: 400,
  SEALDROP_E_UNAUTHENTICATED: 401,
  SEALDROP_E_LOGIN_FAILED: 401,
  SEALDROP_E_ACCOUNT_DISABLED: 403,
  SEALDROP_E_FORBIDDEN: 403,
  SEALDROP_E_SCOPE: 403,
  SEALDROP_E_NOT_FOUND: 404,
  SEALDROP_E_CONFLICT: 409,
  SEALDROP_E_WRONG_STATE: 409,
  SEALDROP_E_TOKEN_INVALID: 400,
  SEALDROP_E_WRONG_SECUPASS: 403,
  SEALDROP_E_SECUPASS_REQUIRED: 409,
  SEALDROP_E_SECUPASS_ACTIVE: 409,
  SEALDROP_E_NOT_RELEASED: 403,
  SEALDROP_E_ACCESS_LOST: 410,
  SEALDROP_E_UNRELEASABLE: 410,
  SEALDROP_E_EXPIRED: 410,
  SEALDROP_E_REVOKED: 410,
  SEALDROP_E_KEY_INVALID: 400,
  SEALDROP_E_WRAP_INVALID: 400,
  SEALDROP_E_TOO_LARGE: 413,
  SEALDROP_E_LIMIT: 400,
  SEALDROP_E_RATE_LIMITED: 429,
  SEALDROP_E_LOCKED: 423,
  SEALDROP_E_DISABLED: 403,
  SEALDROP_E_ABORTED: 400,
  SEALDROP_E_UNAVAILABLE: 503,
  SEALDROP_E_INTERNAL: 500,
};

/** Sets the JSON error response for any thrown value; unknown errors are logged and answered 500. */
export function respondError(ctx: Context, err: unknown, log: Logger): void {
  let code: ErrorCode = 'SEALDROP_E_INTERNAL';
  let message: string = ERROR_CODES.SEALDROP_E_INTERNAL;
  let details: Record<string, unknown> | undefined;
  if (err instanceof SealdropError) {
    code = err.code;
    message = err.message;
    details = err.details;
  } else {
    log.error({ err, code }, 'unhandled error in request');
  }
  if (code === 'SEALDROP_E_INTERNAL' && err instanceof SealdropError) log.error({ err, code }, 'internal error in request');
  ctx.status = HTTP_STATUS[code];
  if (code === 'SEALDROP_E_UNAUTHENTICATED') ctx.set('WWW-Authenticate', 'Bearer realm="sealdrop"');
  if (code === 'SEALDROP_E_RATE_LIMITED' && typeof details?.retryAfter === 'number') ctx.set('Retry-After', String(details.retryAfter));
  ctx.type = 'application/json';
  ctx.body = { error: { code, message } };
}
