/**
 * Argon2-protected key work in a thread of its own that ends with it: SecuPass key generation
 * and unlocking. openpgp.js runs argon2 in WebAssembly memory as large as its cost (64 MiB by
 * default), grows it on the first derivation and keeps it for the life of the module, so one
 * SecuPass activation left a daemon ~70 MB larger for good (measured: idle RSS 106 MB, 177 MB
 * after one activation at 64 MiB; 112 MB after two with the worker). A worker takes that memory
 * with it when it exits; each task pays the worker's start, openpgp.js loaded anew: ~0.25 s
 * from the bundle, beside argon2's own ~0.5 s at 64 MiB.
 * The CLI, a short-lived process, calls keys.ts directly.
 */
import os from 'node:os';
import * as openpgp from 'openpgp';
import { ERROR_CODES, fail, type ErrorCode } from '../core/errors.ts';
import { runOnce } from '../util/one-shot-worker.ts';
import { workerEntry } from '../util/worker-entry.ts';
import type { Argon2Params, KeyMaterial } from './keys.ts';
import type { KeyTask, KeyTaskResult } from './key-worker.ts';

/**
 * Key workers running at once; more tasks wait. Each holds openpgp.js and argon2's memory
 * (~64 MiB at the default cost) while it runs, so unbounded, a burst of releases would take
 * that many times as much; in the main thread they ran one after another.
 */
export const MAX_KEY_WORKERS = Math.max(1, Math.min(4, os.availableParallelism()));

let running = 0;
let started = 0;
const waiting: Array<() => void> = [];

/** Key workers running now. */
export function keyWorkersRunning(): number {
  return running;
}

/**
 * A look at key work: each call tells whether a key worker ran since the previous call, a task
 * that started and ended in between included (the idle reclaimer looks once a second, and a
 * task takes a fraction of one).
 */
export function keyWorkWatch(): () => boolean {
  let seen = started;
  return () => {
    const ran = running > 0 || started !== seen;
    seen = started;
    return ran;
  };
}

async function runTask(task: KeyTask): Promise<KeyTaskResult> {
  while (running >= MAX_KEY_WORKERS) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  started++;
  try {
    return await runWorker(task);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function runWorker(task: KeyTask): Promise<KeyTaskResult> {
  return runOnce<KeyTaskResult>(workerEntry(import.meta.url, 'key-worker'), task, 'key worker');
}

function failure(result: Extract<KeyTaskResult, { ok: false }>): Error {
  return result.code !== undefined && result.code in ERROR_CODES ? fail(result.code as ErrorCode) : new Error(`key work failed: ${result.message}`);
}

/** generateSecuPassKey (keys.ts) in a worker thread. */
export async function generateSecuPassKeyIsolated(email: string, secupass: string, argon2: Argon2Params): Promise<KeyMaterial> {
  const result = await runTask({ op: 'generate', email, secupass, argon2 });
  if (!result.ok) throw failure(result);
  if (!('material' in result)) throw new Error('the key worker answered the wrong task');
  return result.material;
}

/** unlockPrivateKey (keys.ts) in a worker thread: a wrong SecuPass raises SEALDROP_E_WRONG_SECUPASS. */
export async function unlockPrivateKeyIsolated(armored: string, secupass: string): Promise<openpgp.PrivateKey> {
  const result = await runTask({ op: 'unlock', armored, secupass });
  if (!result.ok) throw failure(result);
  if (!('unlocked' in result)) throw new Error('the key worker answered the wrong task');
  try {
    // openpgp.js keeps views into the bytes it parses: it gets a copy of its own (the key's
    // memory from now on, as an unlocked key's always is), and the transferred one is wiped.
    return await openpgp.readPrivateKey({ binaryKey: Uint8Array.from(result.unlocked) });
  } finally {
    result.unlocked.fill(0);
  }
}
