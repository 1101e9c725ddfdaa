// Shared browser helpers: the page's JSON routes (cookie + CSRF header), openpgp.js, and
// temporary files in the origin-private file system (large files never sit in memory).

/** The CSRF token of this page. */
export const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';

let errorTexts;
/** The page-language text of an error code (the `error.<code>` texts the page carries). */
export function errorText(code) {
  if (!errorTexts) {
    try {
      errorTexts = JSON.parse(document.body.dataset.errors ?? '{}');
    } catch {
      errorTexts = {};
    }
  }
  return errorTexts[code];
}

// Codes whose daemon message names what to fix (which rule, which name, which limit).
const DETAILED = new Set(['SEALDROP_E_VALIDATION', 'SEALDROP_E_INVALID_EMAIL', 'SEALDROP_E_INVALID_NAME', 'SEALDROP_E_PASSWORD_POLICY', 'SEALDROP_E_TOO_LARGE', 'SEALDROP_E_LIMIT']);

/**
 * An error answered by the server (or met on this device): `code` is the stable SEALDROP_E_...
 * code; the message is the page-language text, with the daemon's detail where it helps.
 */
export class ApiError extends Error {
  constructor(code, detail, status) {
    const text = errorText(code);
    super(text ? (DETAILED.has(code) && detail ? `${text} (${detail})` : text) : detail);
    this.code = code;
    this.detail = detail;
    this.status = status;
  }
}

/** An error met on this device, with a text of the page (not a daemon answer). */
export function localError(code, message) {
  return Object.assign(new Error(message), { code });
}

/** Calls a /ui/api route; JSON bodies are sent as JSON. Returns the Response (throws ApiError when not ok). */
export async function api(method, path, body, headers = {}) {
  const init = { method, headers: { 'X-CSRF-Token': csrf, ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    if (body instanceof Blob || body instanceof ReadableStream || typeof body === 'string') init.body = body;
    else {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
  }
  let res;
  try {
    res = await fetch(`/ui/api${path}`, init);
  } catch (err) {
    throw new ApiError('SEALDROP_E_NETWORK', String(err?.message ?? err), 0);
  }
  if (!res.ok) {
    let code = 'SEALDROP_E_INTERNAL';
    let message = res.statusText;
    try {
      const j = await res.json();
      code = j.error?.code ?? code;
      message = j.error?.message ?? message;
    } catch {
      /* not JSON */
    }
    throw new ApiError(code, message, res.status);
  }
  return res;
}

/** A text of the page (data-msg-* attributes rendered in the page's language). */
export function msg(el, name, params = {}) {
  const key = `msg${name[0].toUpperCase()}${name.slice(1)}`;
  return (el.dataset[key] ?? name).replace(/\{(\w+)\}/g, (m, k) => (params[k] === undefined ? m : String(params[k])));
}

let openpgpModule;
/** openpgp.js (browser build), loaded once. */
export function openpgp() {
  openpgpModule ??= import('/static/vendor/openpgp.min.mjs');
  return openpgpModule;
}

/** Unlocks the caller's private key with the SecuPass typed into this page (it never leaves the page). */
export async function unlockMyKey(secupass) {
  const pgp = await openpgp();
  const res = await api('GET', '/secupass/key');
  const { key } = await res.json();
  const privateKey = await pgp.readPrivateKey({ armoredKey: key.privateKey });
  try {
    return await pgp.decryptKey({ privateKey, passphrase: secupass });
  } catch {
    throw new ApiError('SEALDROP_E_WRONG_SECUPASS', 'wrong SecuPass', 0);
  }
}

/** A new temporary file in the origin-private file system; `remove()` deletes it. */
export async function tempFile() {
  const root = await navigator.storage.getDirectory();
  const name = `sealdrop-${crypto.randomUUID()}`;
  const handle = await root.getFileHandle(name, { create: true });
  return { handle, remove: () => root.removeEntry(name).catch(() => undefined) };
}

/** Writes a web stream into a temporary file; resolves with the file (rejects, and deletes it, if the stream fails). */
export async function streamToTempFile(stream) {
  const tmp = await tempFile();
  try {
    const writable = await tmp.handle.createWritable();
    await stream.pipeTo(writable);
    return { file: await tmp.handle.getFile(), remove: tmp.remove };
  } catch (err) {
    await tmp.remove();
    throw err;
  }
}

/** Offers a file (or blob) to the user as a download. */
export function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** A slow salted hash of a secret, to compare the SecuPass with the login password on this device only. */
export async function localCheckHash(email, secret) {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', enc.encode(secret), 'PBKDF2', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: enc.encode(`sealdrop-password-check:${email.toLowerCase()}`), iterations: 200000 }, key, 256);
  return Array.from(new Uint8Array(bits), (b) => b.toString(16).padStart(2, '0')).join('');
}
