/** Login password hashing: argon2id (`@node-rs/argon2`), parameters from the configuration. */
import { hash, verify, type Options } from '@node-rs/argon2';

/** argon2id parameters (memory in KiB). */
export interface PasswordHashParams {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

const ARGON2ID = 2 as Options['algorithm'];

/** Hashes a password (PHC string with salt and parameters). */
export async function hashPassword(password: string, params: PasswordHashParams): Promise<string> {
  return hash(password, { ...params, algorithm: ARGON2ID });
}

/** Verifies a password against a PHC hash; false for a malformed hash. */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await verify(phc, password);
  } catch {
    return false;
  }
}

let dummy: Promise<string> | undefined;

/** Spends the time of one verification without an account, so unknown e-mail addresses don't answer faster. */
export async function burnVerification(params: PasswordHashParams, password: string): Promise<void> {
  dummy ??= hashPassword('sealdrop-timing-equalizer', params);
  await verifyPassword(await dummy, password);
}
