/**
 * The real OpenSSH `sftp` client in batch mode for tests: password authentication through
 * `sshpass` (password in the environment, not on the command line) or key authentication, and
 * `rclone` as a second client.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** How to log in. */
export type SftpAuth = { user: string; password: string } | { user: string; keyFile: string };

/** Checks that the clients exist; throws naming the Debian packages otherwise. */
export async function requireSftpTools(): Promise<void> {
  const missing: string[] = [];
  for (const [bin, pkg] of [
    ['sftp', 'openssh-client'],
    ['ssh-keygen', 'openssh-client'],
    ['sshpass', 'sshpass'],
    ['rclone', 'rclone'],
  ]) {
    try {
      await run('which', [bin as string]);
    } catch {
      missing.push(`${bin} (Debian package ${pkg})`);
    }
  }
  if (missing.length) throw new Error(`missing test tools: ${missing.join(', ')}`);
}

/** A fresh ed25519 key pair; returns the private key file (the public key is `<file>.pub`). */
export async function makeSshKey(dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-key-'))): Promise<string> {
  const file = path.join(dir, 'id_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test key', '-f', file]);
  return file;
}

function sftpArgs(port: number, auth: SftpAuth, extra: string[]): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  const common = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-P', String(port), ...extra];
  if ('password' in auth) {
    return {
      cmd: 'sshpass',
      args: ['-e', 'sftp', '-o', 'BatchMode=no', '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password', ...common, `${auth.user}@127.0.0.1`],
      env: { ...process.env, SSHPASS: auth.password },
    };
  }
  return { cmd: 'sftp', args: ['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', auth.keyFile, ...common, `${auth.user}@127.0.0.1`], env: process.env };
}

/** Runs `sftp -b -` with the batch commands on stdin; resolves with exit code and output. */
export async function sftpBatch(port: number, auth: SftpAuth, commands: string[], extra: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  const { cmd, args, env } = sftpArgs(port, auth, ['-b', '-', ...extra]);
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(`${commands.join('\n')}\n`);
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  return { code, stdout, stderr };
}

/**
 * An interactive `sftp -b -` session that stays open until `end()` (which sends `bye` and
 * resolves with the exit code); `ready` resolves once the server answered a first command.
 */
export function sftpSession(port: number, auth: SftpAuth): { ready: Promise<void>; end(): Promise<number> } {
  const { cmd, args, env } = sftpArgs(port, auth, ['-b', '-']);
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const closed = new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  const ready = new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Remote working directory')) resolve();
    });
    void closed.then((code) => reject(new Error(`sftp ended (${code}) before the session was ready`)));
  });
  child.stdin.write('pwd\n');
  return {
    ready,
    end: () => {
      child.stdin.end('bye\n');
      return closed;
    },
  };
}

/** Starts a batch in its own process group (so a test can kill the whole client). */
export function sftpBatchDetached(port: number, auth: SftpAuth, commands: string[]): ChildProcess {
  const { cmd, args, env } = sftpArgs(port, auth, ['-b', '-']);
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  child.stdin?.end(`${commands.join('\n')}\n`);
  return child;
}

/** Quotes a path for an sftp batch line. */
export function q(p: string): string {
  return `"${p.replace(/(["\\])/g, '\\$1')}"`;
}

/** `rclone` against the daemon's SFTP with a password (connection string, no config file). */
export async function rclone(port: number, user: string, password: string, args: (remote: (p: string) => string) => string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { stdout: obscured } = await run('rclone', ['obscure', password]);
  const remote = (p: string) => `:sftp,host=127.0.0.1,port=${port},user=${user},pass=${obscured.trim()},disable_hashcheck=true:${p}`;
  return new Promise((resolve) => {
    execFile('rclone', [...args(remote), '--config', '/dev/null', '-v'], { maxBuffer: 1 << 22 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}
