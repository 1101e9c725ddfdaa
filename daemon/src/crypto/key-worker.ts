/**
 * Worker thread body for argon2-protected key work (crypto/isolated-keys.ts): runs one task
 * of keys.ts, posts its result and ends, so the WebAssembly memory openpgp.js grew for argon2
 * (64 MiB at the default cost, kept by the module for good) goes with the thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isSealdropError } from '../core/errors.ts';
import { generateSecuPassKey, unlockPrivateKey, type Argon2Params, type KeyMaterial } from './keys.ts';

/** What the main thread asks. */
export type KeyTask = { op: 'generate'; email: string; secupass: string; argon2: Argon2Params } | { op: 'unlock'; armored: string; secupass: string };

/** What the worker answers: the key material, the unlocked private key (binary, moved), or an error. */
export type KeyTaskResult = { ok: true; material: KeyMaterial } | { ok: true; unlocked: Uint8Array } | { ok: false; code?: string | undefined; message: string };

async function run(task: KeyTask): Promise<KeyTaskResult> {
  if (task.op === 'generate') return { ok: true, material: await generateSecuPassKey(task.email, task.secupass, task.argon2) };
  const key = await unlockPrivateKey(task.armored, task.secupass);
  return { ok: true, unlocked: key.write() };
}

const port = parentPort;
if (!port) throw new Error('key-worker must run in a worker thread');
run(workerData as KeyTask).then(
  (result) => port.postMessage(result, 'unlocked' in result ? [result.unlocked.buffer as ArrayBuffer] : []),
  (err: unknown) => port.postMessage({ ok: false, code: isSealdropError(err) ? err.code : undefined, message: (err as Error).message } satisfies KeyTaskResult),
);
