/**
 * A worker thread for one task: started with its input, it answers with one message and ends
 * (crypto/isolated-keys.ts: argon2 key work; store/orm.ts: migrations). The memory it grew
 * (WebAssembly, modules) goes with it.
 */
import { Worker } from 'node:worker_threads';

/**
 * Runs the worker at `entry` with `workerData` and resolves with its first message. Rejects
 * with the thread's error, or if it exits without answering; `what` names it in that message.
 */
export function runOnce<T>(entry: URL, workerData: unknown, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(entry, { workerData });
    let answered = false;
    worker.once('message', (m: T) => {
      answered = true;
      resolve(m);
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (!answered) reject(new Error(`the ${what} exited (code ${code}) without an answer`));
    });
  });
}
