/**
 * Exit codes of the `sealdrop` command and the mapping from the daemon's stable error codes to
 * them, so scripts can tell "wrong credentials" from "try again later" from "tampered file".
 */

/** Exit codes (documented in the README and `sealdrop --help`). */
export const EXIT = {
  ok: 0,
  /** Anything not covered below (the message names the error code). */
  failure: 1,
  /** Bad command line or configuration. */
  usage: 2,
  /** Missing or rejected credentials: token, password, SecuPass, scope, disabled account. */
  auth: 3,
  /** No such delivery, file or account (or not visible to the caller). */
  notFound: 4,
  /** The object is in a state that does not allow this (not released yet, sent, expired, revoked, …). */
  wrongState: 5,
  /** The server could not be reached, broke the connection, or is unavailable. */
  network: 6,
  /** A downloaded file failed its integrity check (nothing was written under its name). */
  integrity: 7,
} as const;

/** One exit code. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const BY_CODE: Record<string, ExitCode> = {
  SEALDROP_E_UNAUTHENTICATED: EXIT.auth,
  SEALDROP_E_LOGIN_FAILED: EXIT.auth,
  SEALDROP_E_ACCOUNT_DISABLED: EXIT.auth,
  SEALDROP_E_FORBIDDEN: EXIT.auth,
  SEALDROP_E_SCOPE: EXIT.auth,
  SEALDROP_E_TOKEN_INVALID: EXIT.auth,
  SEALDROP_E_WRONG_SECUPASS: EXIT.auth,
  SEALDROP_E_RATE_LIMITED: EXIT.auth,
  SEALDROP_E_NOT_FOUND: EXIT.notFound,
  SEALDROP_E_WRONG_STATE: EXIT.wrongState,
  SEALDROP_E_CONFLICT: EXIT.wrongState,
  SEALDROP_E_SECUPASS_REQUIRED: EXIT.wrongState,
  SEALDROP_E_SECUPASS_ACTIVE: EXIT.wrongState,
  SEALDROP_E_NOT_RELEASED: EXIT.wrongState,
  SEALDROP_E_ACCESS_LOST: EXIT.wrongState,
  SEALDROP_E_UNRELEASABLE: EXIT.wrongState,
  SEALDROP_E_EXPIRED: EXIT.wrongState,
  SEALDROP_E_REVOKED: EXIT.wrongState,
  SEALDROP_E_LOCKED: EXIT.wrongState,
  SEALDROP_E_DISABLED: EXIT.wrongState,
  SEALDROP_E_UNAVAILABLE: EXIT.network,
};

/** The exit code for a daemon error code. */
export function exitCodeFor(code: string): ExitCode {
  return BY_CODE[code] ?? EXIT.failure;
}

export const EXIT_CODES_HELP = `Exit codes: 0 ok, 1 other failure, 2 usage or configuration, 3 authentication
(token, password, SecuPass, scope), 4 not found, 5 wrong state (not released yet,
expired, revoked, ...), 6 network or server unavailable, 7 integrity check failed.`;
