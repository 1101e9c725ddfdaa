/** Vitest global setup: checks once that the external tools the outside-in tests drive are installed. */
import { execFileSync } from 'node:child_process';

const TOOLS: Array<{ bin: string; args: string[]; pkg: string }> = [
  { bin: 'gpg', args: ['--version'], pkg: 'gnupg' },
  { bin: 'curl', args: ['--version'], pkg: 'curl' },
];

export default function setup(): void {
  const missing: string[] = [];
  for (const tool of TOOLS) {
    try {
      execFileSync(tool.bin, tool.args, { stdio: 'ignore' });
    } catch {
      missing.push(`${tool.bin} (Debian package ${tool.pkg})`);
    }
  }
  if (missing.length > 0) {
    throw new Error(`missing test tools: ${missing.join(', ')}; run .ci/run or apt-get install them`);
  }
}
