/**
 * The core's one error type with stable codes. Codes are never reused for another meaning;
 * front-ends map them to HTTP statuses, SFTP status codes and CLI exit codes.
 */

/** Every error code the core raises, with what it means. */
export const ERROR_CODES = {
  SEALDROP_E_VALIDATION: 'a request field is missing or malformed',
  SEALDROP_E_INVALID_EMAIL: 'an e-mail address is malformed',
  SEALDROP_E_INVALID_NAME: 'a file or folder name is not allowed',
  SEALDROP_E_PASSWORD_POLICY: 'a password or SecuPass does not meet the policy',
  SEALDROP_E_UNAUTHENTICATED: 'no valid credentials were presented',
  SEALDROP_E_LOGIN_FAILED: 'e-mail address or password is wrong',
  SEALDROP_E_ACCOUNT_DISABLED: 'the account is disabled',
  SEALDROP_E_FORBIDDEN: 'the caller may not do this',
  SEALDROP_E_SCOPE: 'the API token lacks the scope this needs',
  SEALDROP_E_NOT_FOUND: 'no such object (or not visible to the caller)',
  SEALDROP_E_CONFLICT: 'the object already exists',
  SEALDROP_E_WRONG_STATE: 'the object is not in a state that allows this',
  SEALDROP_E_TOKEN_INVALID: 'the token is unknown, expired or already used',
  SEALDROP_E_WRONG_SECUPASS: 'the SecuPass is wrong',
  SEALDROP_E_SECUPASS_REQUIRED: 'an active SecuPass is needed first',
  SEALDROP_E_SECUPASS_ACTIVE: 'the SecuPass is already active',
  SEALDROP_E_NOT_RELEASED: 'the delivery has not been released to the caller yet',
  SEALDROP_E_ACCESS_LOST: 'the caller\'s SecuPass was reset; access to this delivery is lost',
  SEALDROP_E_UNRELEASABLE: 'the delivery can no longer be released',
  SEALDROP_E_EXPIRED: 'the delivery has expired',
  SEALDROP_E_REVOKED: 'the delivery was revoked by its sender',
  SEALDROP_E_KEY_INVALID: 'a key supplied by the client is not acceptable',
  SEALDROP_E_WRAP_INVALID: 'a key wrap supplied by the client is not acceptable',
  SEALDROP_E_TOO_LARGE: 'a body or file exceeds its size limit',
  SEALDROP_E_LIMIT: 'a count limit (files, recipients) is exceeded',
  SEALDROP_E_RATE_LIMITED: 'too many attempts; try again later',
  SEALDROP_E_LOCKED: 'the file or folder is locked (WebDAV) and the request holds no matching lock token',
  SEALDROP_E_DISABLED: 'this function is switched off in the configuration',
  SEALDROP_E_ABORTED: 'the transfer was aborted before it completed',
  SEALDROP_E_UNAVAILABLE: 'the service is shutting down or a dependency is unreachable',
  SEALDROP_E_INTERNAL: 'an internal error; see the daemon log',
} as const;

/** A stable error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** The core's error: a stable code, a human-readable message and optional safe details. */
export class SealdropError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string = ERROR_CODES[code],
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'SealdropError';
  }
}

/** Shorthand for `new SealdropError(...)`. */
export function fail(code: ErrorCode, message?: string, details?: Record<string, unknown>): SealdropError {
  return new SealdropError(code, message, details);
}

/** True if `err` is a SealdropError (optionally with that code). */
export function isSealdropError(err: unknown, code?: ErrorCode): err is SealdropError {
  return err instanceof SealdropError && (code === undefined || err.code === code);
}
