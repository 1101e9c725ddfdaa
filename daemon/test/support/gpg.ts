/**
 * Real GnuPG for tests: a temporary keyring holding a copy of a sealdrop key unlocked with
 * openpgp.js (GnuPG 2.2 cannot import argon2-protected keys), and `gpg --decrypt`.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as openpgp from 'openpgp';

const run = promisify(execFile);

/** A temporary GnuPG home with one imported secret key. */
export class GpgKeyring {
  private constructor(readonly home: string) {}

  /** Unlocks `armoredPrivateKey` with `passphrase` (openpgp.js) and imports the unprotected copy. */
  static async withKey(armoredPrivateKey: string, passphrase: string): Promise<GpgKeyring> {
    try {
      await run('gpg', ['--version']);
    } catch {
      throw new Error('gpg is not installed: install the Debian package gnupg');
    }
    const home = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-gpg-'));
    const unlocked = await openpgp.decryptKey({ privateKey: await openpgp.readPrivateKey({ armoredKey: armoredPrivateKey }), passphrase });
    await new Promise<void>((resolve, reject) => {
      const child = spawn('gpg', ['--homedir', home, '--batch', '--import'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`gpg --import failed: ${err}`))));
      child.stdin.end(unlocked.armor());
    });
    return new GpgKeyring(home);
  }

  /** `gpg --decrypt` of a file; returns the plaintext. */
  async decrypt(file: string): Promise<Buffer> {
    const out = `${file}.out`;
    try {
      await run('gpg', ['--homedir', this.home, '--batch', '--yes', '--pinentry-mode', 'loopback', '--decrypt', '--output', out, file], { maxBuffer: 1 << 20 });
      return readFileSync(out);
    } finally {
      rmSync(out, { force: true });
    }
  }

  /** Stops the agent and removes the keyring. */
  async remove(): Promise<void> {
    await run('gpgconf', ['--homedir', this.home, '--kill', 'gpg-agent']).catch(() => undefined);
    rmSync(this.home, { recursive: true, force: true });
  }
}
