/**
 * OpenPGP keys and session-key wraps (openpgp.js): SecuPass key generation (v4 curve25519,
 * argon2-protected private key advertising SEIPDv1 only), validation of client-made keys and
 * wraps, unlocking, and wrapping/unwrapping session keys as PKESK packets.
 */
import * as openpgp from 'openpgp';
import { fail, SealdropError } from '../core/errors.ts';
import { parsePkesk, splitPkesks } from './packets.ts';

/** Argon2 S2K parameters (openpgp.js `s2kArgon2Params`). */
export interface Argon2Params {
  passes: number;
  parallelism: number;
  memoryExponent: number;
}

/** Public facts about a key pair, as stored in a SecuPassKey row. */
export interface KeyMaterial {
  publicKey: string;
  privateKey: string;
  fingerprint: string;
  encryptionKeyId: string;
}

/** AES-256 key size in bytes (the only session-key algorithm sealdrop writes). */
export const SESSION_KEY_BYTES = 32;
/** Public-key algorithms a client wrap may use: RSA (1) and ECDH (18). */
const WRAP_ALGORITHMS = new Set([1, 18]);

/**
 * Generates a key pair for `email` and protects the private key under `secupass` with argon2
 * (generated without AEAD first so the key's features advertise SEIPDv1, which GnuPG 2.2 reads).
 */
export async function generateSecuPassKey(email: string, secupass: string, argon2: Argon2Params): Promise<KeyMaterial> {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ email }],
    format: 'object',
    config: { v6Keys: false, aeadProtect: false },
  });
  const encrypted = await openpgp.encryptKey({
    privateKey,
    passphrase: secupass,
    config: { s2kType: openpgp.enums.s2k.argon2, aeadProtect: true, s2kArgon2Params: argon2 },
  });
  const publicKey = privateKey.toPublic();
  return {
    publicKey: publicKey.armor(),
    privateKey: encrypted.armor(),
    fingerprint: publicKey.getFingerprint(),
    encryptionKeyId: await encryptionKeyIdOf(publicKey),
  };
}

async function encryptionKeyIdOf(key: openpgp.Key): Promise<string> {
  try {
    const sub = await key.getEncryptionKey();
    return sub.getKeyID().toHex();
  } catch (err) {
    throw fail('SEALDROP_E_KEY_INVALID', `the key has no usable encryption subkey: ${(err as Error).message}`);
  }
}

async function readArmoredKey(armored: string, what: string): Promise<openpgp.Key> {
  if (typeof armored !== 'string' || armored.length > 64 * 1024) throw fail('SEALDROP_E_KEY_INVALID', `${what} must be an armored OpenPGP key of at most 64 KiB`);
  try {
    return await openpgp.readKey({ armoredKey: armored });
  } catch (err) {
    throw fail('SEALDROP_E_KEY_INVALID', `${what} is not a readable OpenPGP key: ${(err as Error).message}`);
  }
}

/**
 * Validates a key pair made by a client (browser, CLI): v4, valid self-signatures, an
 * encryption subkey, the private part fully encrypted, both halves the same key. Returns the
 * facts to store (the private key is re-armored as given, never decrypted here).
 */
export async function inspectClientKeyPair(publicArmored: string, privateArmored: string): Promise<KeyMaterial> {
  const pub = await readArmoredKey(publicArmored, 'publicKey');
  const priv = await readArmoredKey(privateArmored, 'privateKey');
  if (pub.isPrivate()) throw fail('SEALDROP_E_KEY_INVALID', 'publicKey contains secret key material');
  if (!priv.isPrivate()) throw fail('SEALDROP_E_KEY_INVALID', 'privateKey holds no secret key');
  if (pub.keyPacket.version !== 4) throw fail('SEALDROP_E_KEY_INVALID', 'only v4 keys are accepted (GnuPG 2.2 compatibility)');
  if (pub.getFingerprint() !== priv.getFingerprint()) throw fail('SEALDROP_E_KEY_INVALID', 'publicKey and privateKey are different keys');
  const privateKey = priv as openpgp.PrivateKey;
  const secretPackets = [privateKey.keyPacket, ...privateKey.subkeys.map((s) => s.keyPacket)];
  for (const packet of secretPackets) {
    if ('isDecrypted' in packet && (packet as openpgp.SecretKeyPacket).isDecrypted() !== false) {
      throw fail('SEALDROP_E_KEY_INVALID', 'privateKey must be encrypted under the SecuPass');
    }
  }
  try {
    await pub.verifyPrimaryKey();
  } catch (err) {
    throw fail('SEALDROP_E_KEY_INVALID', `publicKey is not valid: ${(err as Error).message}`);
  }
  return {
    publicKey: pub.armor(),
    privateKey: privateKey.armor(),
    fingerprint: pub.getFingerprint(),
    encryptionKeyId: await encryptionKeyIdOf(pub),
  };
}

/** Decrypts an armored private key with the SecuPass; a wrong SecuPass raises SEALDROP_E_WRONG_SECUPASS. */
export async function unlockPrivateKey(armored: string, secupass: string): Promise<openpgp.PrivateKey> {
  const privateKey = await openpgp.readPrivateKey({ armoredKey: armored });
  try {
    return await openpgp.decryptKey({ privateKey, passphrase: secupass });
  } catch {
    throw fail('SEALDROP_E_WRONG_SECUPASS');
  }
}

const publicKeyCache = new Map<string, openpgp.Key>();

/** Parses an armored public key, caching by its text (keys are immutable once stored). */
export async function readPublicKey(armored: string): Promise<openpgp.Key> {
  let key = publicKeyCache.get(armored);
  if (!key) {
    key = await openpgp.readKey({ armoredKey: armored });
    if (publicKeyCache.size > 1000) publicKeyCache.clear();
    publicKeyCache.set(armored, key);
  }
  return key;
}

/** Wraps an AES-256 session key to a public key: returns one v3 PKESK packet (header included). */
export async function wrapSessionKey(sessionKey: Uint8Array, publicKeyArmored: string): Promise<Uint8Array> {
  const key = await readPublicKey(publicKeyArmored);
  const message = await openpgp.encryptSessionKey({
    data: sessionKey,
    algorithm: 'aes256',
    encryptionKeys: key,
    format: 'binary',
  });
  const { pkesks } = splitPkesks(message);
  const pkesk = pkesks[0];
  if (pkesks.length !== 1 || !pkesk) throw new SealdropError('SEALDROP_E_INTERNAL', 'unexpected session-key packet layout');
  return pkesk;
}

/** Unwraps a PKESK with an unlocked private key; returns the AES-256 session key. */
export async function unwrapSessionKey(pkesk: Uint8Array, privateKey: openpgp.PrivateKey): Promise<Uint8Array> {
  const message = await openpgp.readMessage({ binaryMessage: pkesk });
  const keys = await openpgp.decryptSessionKeys({ message, decryptionKeys: privateKey });
  const key = keys[0];
  if (!key || key.algorithm !== 'aes256' || key.data.length !== SESSION_KEY_BYTES) {
    throw new SealdropError('SEALDROP_E_INTERNAL', 'a stored key wrap does not hold an AES-256 session key');
  }
  return key.data;
}

/**
 * Checks a PKESK made by a client for a recipient: one well-formed v3 packet, ECDH, addressed
 * to the recipient's current encryption subkey. (The session key inside cannot be checked
 * without the recipient's private key.)
 */
export function checkClientWrap(pkesk: Uint8Array, encryptionKeyId: string): void {
  let parsed;
  try {
    const { pkesks, rest } = splitPkesks(pkesk);
    if (pkesks.length !== 1 || rest.length !== 0) throw new Error('expected exactly one PKESK packet');
    parsed = parsePkesk(pkesks[0] as Uint8Array);
  } catch (err) {
    throw fail('SEALDROP_E_WRAP_INVALID', `not a single OpenPGP PKESK packet: ${(err as Error).message}`);
  }
  if (parsed.version !== 3) throw fail('SEALDROP_E_WRAP_INVALID', 'only v3 PKESK packets are accepted');
  if (!WRAP_ALGORITHMS.has(parsed.algorithm)) throw fail('SEALDROP_E_WRAP_INVALID', `public-key algorithm ${parsed.algorithm} is not accepted`);
  if (parsed.keyId !== encryptionKeyId.toLowerCase()) {
    throw fail('SEALDROP_E_WRAP_INVALID', `the wrap is addressed to key ${parsed.keyId}, not the recipient's current key ${encryptionKeyId}`);
  }
}
