/**
 * Validation of hostile client input shared by every front-end: e-mail addresses, file names,
 * subjects, messages, passwords. Each failure is a SealdropError with a stable code and a
 * message that names the field.
 */
import { fail } from './errors.ts';

const LOCAL_ATOM = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+$/;
const DOMAIN_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * Normalizes and validates an e-mail address (`local@domain`, dot-atom local part, DNS domain
 * with at least two labels, at most 254 characters). Returns it lower-cased.
 */
export function normalizeEmail(input: unknown, field = 'email'): string {
  if (typeof input !== 'string') throw fail('SEALDROP_E_INVALID_EMAIL', `${field} must be an e-mail address`, { field });
  const email = input.trim().toLowerCase();
  const shown = JSON.stringify(email.length > 80 ? `${email.slice(0, 80)}…` : email);
  const bad = (why: string) => fail('SEALDROP_E_INVALID_EMAIL', `${field} ${shown} is not a valid e-mail address: ${why}`, { field });
  if (email.length === 0) throw bad('empty');
  if (email.length > 254) throw bad('longer than 254 characters');
  const at = email.lastIndexOf('@');
  if (at <= 0 || at !== email.indexOf('@')) throw bad('needs exactly one "@" with a name before it');
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (local.length > 64) throw bad('the part before "@" is longer than 64 characters');
  if (local.split('.').some((atom) => !LOCAL_ATOM.test(atom))) throw bad('the part before "@" has characters or dots that are not allowed');
  const labels = domain.split('.');
  if (labels.length < 2 || labels.some((l) => !DOMAIN_LABEL.test(l))) throw bad('the domain is not a valid host name');
  if (/^\d+$/.test(labels[labels.length - 1] ?? '')) throw bad('the domain must not be an IP address');
  return email;
}

/**
 * Control characters (C0, DEL, C1), the line and paragraph separators and the invisible zero
 * width space and byte order mark: a name or subject with them can show as several lines (in a
 * plain-text mail's file list, say) or hide what it is. The zero width joiner and non-joiner
 * stay allowed: emoji sequences and Persian or Indic names need them.
 */
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200b\ufeff]/;

/**
 * Bidirectional embeddings, overrides and isolates: they reorder what follows them, the way to
 * disguise a name. The marks (U+200E, U+200F, U+061C) only set a direction and are part of
 * ordinary right-to-left names, so they stay allowed.
 */
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/;

/** Every character displayName replaces. */
const NOT_IN_NAMES = new RegExp(`${CONTROLS.source}|${BIDI_CONTROLS.source}|[/\\\\]`, 'g');

/**
 * `s` shown safely as one name: lone surrogates become U+FFFD, and what a name may not hold
 * (control characters as in CONTROLS, bidirectional embeddings, overrides and isolates, path
 * separators) becomes "_". For names made from stored text (a subject), not for checking input.
 */
export function displayName(s: string): string {
  return wellFormed(s).replace(NOT_IN_NAMES, '_');
}

/** `s` with every lone surrogate (half of a character cut apart) replaced by U+FFFD. */
export function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/** Longest file name in UTF-8 bytes. */
export const MAX_NAME_BYTES = 255;

/**
 * Validates a file name from a client: NFC-normalized, 1-255 UTF-8 bytes, no path separators,
 * no control characters (NUL included), no bidirectional controls, not "." or "..", no leading
 * or trailing space, no trailing dot. Returns the normalized name.
 */
export function validateFileName(input: unknown, field = 'name'): string {
  if (typeof input !== 'string') throw fail('SEALDROP_E_INVALID_NAME', `${field} must be a string`);
  const name = input.normalize('NFC');
  // JSON.stringify already escapes control characters.
  const shown = JSON.stringify(name.length > 60 ? `${name.slice(0, 60)}…` : name);
  const bad = (why: string) => fail('SEALDROP_E_INVALID_NAME', `${field} ${shown} is not allowed: ${why}`);
  if (name.length === 0) throw bad('empty');
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) throw bad(`longer than ${MAX_NAME_BYTES} bytes`);
  if (CONTROLS.test(name)) throw bad('contains control characters');
  if (/[/\\]/.test(name)) throw bad('contains a path separator');
  // Bidirectional controls make a name read differently from what it is ("…exe.pdf" shown for
  // "…fdp.exe"): a classic way to disguise a file for its recipient.
  if (BIDI_CONTROLS.test(name)) throw bad('contains bidirectional control characters');
  if (name === '.' || name === '..') throw bad('is a relative path');
  if (/^\s|\s$/.test(name)) throw bad('starts or ends with white space');
  if (name.endsWith('.')) throw bad('ends with a dot');
  if (/[\ud800-\udfff]/.test(name.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))) throw bad('is not valid Unicode');
  return name;
}

/** Deepest folder nesting inside a delivery. */
export const MAX_PATH_DEPTH = 16;
/** Longest relative path of a file inside a delivery, in bytes. */
export const MAX_PATH_BYTES = 1024;

/**
 * Validates a file's path inside a delivery: one or more names (each as validateFileName)
 * joined by `/`, at most MAX_PATH_DEPTH deep and MAX_PATH_BYTES long.
 */
export function validateRelativePath(input: unknown, field = 'name'): string {
  if (typeof input !== 'string') throw fail('SEALDROP_E_INVALID_NAME', `${field} must be a string`);
  const parts = input.split('/');
  if (parts.length > MAX_PATH_DEPTH) throw fail('SEALDROP_E_INVALID_NAME', `${field} is nested deeper than ${MAX_PATH_DEPTH} folders`);
  const rel = parts.map((part) => validateFileName(part, field)).join('/');
  if (Buffer.byteLength(rel, 'utf8') > MAX_PATH_BYTES) throw fail('SEALDROP_E_INVALID_NAME', `${field} is longer than ${MAX_PATH_BYTES} bytes`);
  return rel;
}

/** Validates a subject line: 1..max characters, single line, no control characters. */
export function validateSubject(input: unknown, max: number): string {
  if (typeof input !== 'string') throw fail('SEALDROP_E_VALIDATION', 'subject must be a string');
  const subject = input.normalize('NFC').trim();
  if (subject.length === 0) throw fail('SEALDROP_E_VALIDATION', 'subject must not be empty');
  if (subject.length > max) throw fail('SEALDROP_E_VALIDATION', `subject is longer than ${max} characters`);
  if (CONTROLS.test(subject)) throw fail('SEALDROP_E_VALIDATION', 'subject must be one line without control characters');
  // The subject names the recipient's inbox folder and the mail: as with file names, no
  // bidirectional controls that make it read differently.
  if (BIDI_CONTROLS.test(subject)) throw fail('SEALDROP_E_VALIDATION', 'subject must not contain bidirectional control characters');
  return subject;
}

/** Validates an optional message text (at most `maxBytes` UTF-8 bytes, no NUL). */
export function validateMessage(input: unknown, maxBytes: number): string | undefined {
  if (input === undefined || input === null || input === '') return undefined;
  if (typeof input !== 'string') throw fail('SEALDROP_E_VALIDATION', 'message must be a string');
  if (Buffer.byteLength(input, 'utf8') > maxBytes) throw fail('SEALDROP_E_TOO_LARGE', `message is longer than ${maxBytes} bytes`);
  if (input.includes('\u0000')) throw fail('SEALDROP_E_VALIDATION', 'message must not contain NUL characters');
  return input;
}

/** A few passwords too common to accept whatever their length. */
const COMMON = new Set(['password1234', '123456789012', 'qwertyuiopas', 'passwordpassword', 'letmeinletmein', 'sealdropsealdrop']);

/**
 * Checks a password or SecuPass against the policy: at least `minLength` characters, at most
 * 1024, not the e-mail address, not a single repeated character, not a known common one.
 */
export function checkPasswordPolicy(input: unknown, opts: { minLength: number; email?: string; field?: string }): string {
  const field = opts.field ?? 'password';
  if (typeof input !== 'string') throw fail('SEALDROP_E_VALIDATION', `${field} must be a string`);
  const pw = input;
  const policy = (why: string) => fail('SEALDROP_E_PASSWORD_POLICY', `${field} ${why}`);
  if ([...pw].length < opts.minLength) throw policy(`must have at least ${opts.minLength} characters`);
  if (pw.length > 1024) throw policy('must have at most 1024 characters');
  if (pw.includes('\u0000')) throw policy('must not contain NUL characters');
  if (opts.email && pw.toLowerCase().includes(opts.email.toLowerCase())) throw policy('must not contain the e-mail address');
  if (/^(.)\1*$/u.test(pw)) throw policy('must not be one character repeated');
  if (COMMON.has(pw.toLowerCase())) throw policy('is too common');
  return pw;
}

/** The password policy as text, for help and UI hints. */
export function describePasswordPolicy(minLength: number): string {
  return `at least ${minLength} characters, not containing your e-mail address, not a common password`;
}

/** Validates a UUID-shaped id from a client (anything else is "not found", never a crash). */
export function isUuid(input: unknown): input is string {
  return typeof input === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(input);
}
