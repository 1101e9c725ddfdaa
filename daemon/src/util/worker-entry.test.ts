import { describe, expect, it } from 'vitest';
import { workerEntry } from './worker-entry.ts';

describe('workerEntry', () => {
  it('names the loader entry beside a source module and the bundled script beside the bundle', () => {
    expect(workerEntry('file:///app/daemon/src/crypto/encrypt-pool.ts', 'encrypt-worker').href).toBe('file:///app/daemon/src/crypto/encrypt-worker-entry.mjs');
    expect(workerEntry('file:///app/dist/sealdrop.mjs', 'encrypt-worker').href).toBe('file:///app/dist/encrypt-worker.mjs');
  });
});
