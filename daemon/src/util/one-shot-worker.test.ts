import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runOnce } from './one-shot-worker.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-worker-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A worker file with `body` after the worker_threads import. */
function worker(name: string, body: string): URL {
  const file = path.join(dir, `${name}.mjs`);
  writeFileSync(file, `import { parentPort, workerData } from 'node:worker_threads';\n${body}\n`);
  return pathToFileURL(file);
}

describe('runOnce', () => {
  it("resolves with the worker's answer to its input", async () => {
    await expect(runOnce(worker('echo', 'parentPort.postMessage({ twice: workerData * 2 });'), 21, 'echo worker')).resolves.toEqual({ twice: 42 });
  });

  it('rejects with the error the worker throws', async () => {
    await expect(runOnce(worker('throws', "throw new Error('no such thing');"), null, 'failing worker')).rejects.toThrow('no such thing');
  });

  it('rejects, naming the worker, when it ends without an answer', async () => {
    await expect(runOnce(worker('silent', 'process.exit(3);'), null, 'silent worker')).rejects.toThrow('the silent worker exited (code 3) without an answer');
  });
});
