/**
 * Vitest global setup: checks once that the external tools the outside-in tests drive are
 * installed, and starts the one PostgreSQL cluster of the run (stopped and removed at the end).
 */
import { execFileSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { startPostgresCluster } from './postgres.ts';

const TOOLS: Array<{ bin: string; args: string[]; pkg: string }> = [
  // args are documentation of how each tool is called; presence is checked with `command -v`
  { bin: 'gpg', args: ['--version'], pkg: 'gnupg' },
  { bin: 'curl', args: ['--version'], pkg: 'curl' },
  { bin: 'sftp', args: ['-h'], pkg: 'openssh-client' },
  { bin: 'ssh-keygen', args: ['-?'], pkg: 'openssh-client' },
  { bin: 'sshpass', args: ['-V'], pkg: 'sshpass' },
  { bin: 'rclone', args: ['version'], pkg: 'rclone' },
  { bin: 'chromium', args: ['--headless'], pkg: 'chromium' },
  { bin: 'litmus', args: ['--version'], pkg: 'litmus' },
  { bin: 'openssl', args: ['version'], pkg: 'openssl' },
  { bin: 'systemd-analyze', args: ['--version'], pkg: 'systemd' },
];

export default async function setup(project: TestProject): Promise<() => void> {
  const missing: string[] = [];
  for (const tool of TOOLS) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool.bin}`], { stdio: 'ignore' });
    } catch {
      missing.push(`${tool.bin} (Debian package ${tool.pkg})`);
    }
  }
  if (missing.length > 0) {
    throw new Error(`missing test tools: ${missing.join(', ')}; run .ci/run or apt-get install them`);
  }
  const postgres = await startPostgresCluster();
  project.provide('postgresUrl', postgres.url);
  project.provide('postgresCaFile', postgres.caFile);
  return () => postgres.stop();
}
