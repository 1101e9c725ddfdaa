/** The server CLI as a user runs it: help, configuration errors (exit 2), account creation. */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, sandbox, type Sandbox } from './support/daemon-process.ts';

let sb: Sandbox;
beforeAll(() => {
  sb = sandbox();
});
afterAll(() => sb.remove());

describe('sealdrop CLI', () => {
  it('prints help for every command', async () => {
    const top = await runCli(sb, ['--help']);
    expect(top.code).toBe(0);
    for (const c of ['serve', 'migrate', 'account add', 'config check']) expect(top.stdout).toContain(c);
    for (const c of ['serve', 'send', 'release', 'fetch', 'deliveries', 'status', 'token', 'expire']) expect(top.stdout).toContain(c);
    expect(top.stdout).toMatch(/Exit codes: 0 ok, .*\n.*4 not found/);
    for (const c of ['serve', 'migrate', 'account', 'config', 'send', 'release', 'fetch', 'key', 'deliveries', 'status', 'token', 'secupass', 'audit', 'expire']) {
      const r = await runCli(sb, [c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.stdout).toMatch(/^Usage: sealdrop /);
    }
    expect((await runCli(sb, [])).code).toBe(2);
    const unknown = await runCli(sb, ['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });

  it('stops on an invalid configuration with one line per problem and exit code 2', async () => {
    const f = path.join(sb.dir, 'bad.yaml');
    writeFileSync(f, 'deliveries:\n  maxRecipients: 0\nunknownSection: {}\n');
    const r = await runCli(sb, ['serve', '--config', f], undefined, { SEALDROP_MAIL__SMTP__PASSWORD_FILE: '/nonexistent/secret' });
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^config error: deliveries\.maxRecipients: /),
        'config error: unknownSection: unknown configuration key',
        expect.stringMatching(/^config error: mail\.smtp\.password: cannot read secret file \/nonexistent\/secret/),
      ]),
    );
    expect((await runCli(sb, ['config', 'check', '--config', f])).code).toBe(2);
    const env = await runCli(sb, ['config', 'check'], undefined, { SEALDROP_HTTP__PORT: 'x' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('config error: http.port: expected number');
  });

  it('exits with the error when a listener cannot start, instead of running half-started', async () => {
    // An unreadable SFTP host key (written after the HTTP listener is up) and an SFTP port in use.
    const own = sandbox();
    const blocker = net.createServer();
    try {
      mkdirSync(path.join(own.dataDir, 'host-keys'), { recursive: true });
      writeFileSync(path.join(own.dataDir, 'host-keys', 'ssh_host_ed25519_key'), '-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n', { mode: 0o600 });
      const started = Date.now();
      const badKey = await runCli(own, ['serve']);
      expect(badKey.code).not.toBe(0);
      expect(badKey.stderr).toMatch(/cannot read host key .*ssh_host_ed25519_key/);
      expect(Date.now() - started).toBeLessThan(20_000);
      rmSync(path.join(own.dataDir, 'host-keys'), { recursive: true });
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const busy = await runCli(own, ['serve'], undefined, { SEALDROP_SFTP__PORT: String((blocker.address() as net.AddressInfo).port) });
      expect(busy.code).not.toBe(0);
      expect(busy.stderr).toMatch(/EADDRINUSE/);
    } finally {
      blocker.close();
      own.remove();
    }
  }, 60_000);

  it('shows the configuration with secrets redacted', async () => {
    const secret = path.join(sb.dir, 'smtp-password');
    writeFileSync(secret, 'hunter2-very-secret\n');
    const r = await runCli(sb, ['config', 'show'], undefined, { SEALDROP_MAIL__SMTP__PASSWORD_FILE: secret, SEALDROP_HTTP__PORT: '8181' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('port: 8181');
    expect(r.stdout).toContain('[redacted]');
    expect(r.stdout).not.toContain('hunter2');
  });

  it('adds accounts with a password from stdin or by invitation, with clear errors', async () => {
    const ok = await runCli(sb, ['account', 'add', '--email', 'Root@Example.org', '--role', 'admin', '--password-stdin'], 'root password is long\n');
    expect(ok, ok.stderr).toMatchObject({ code: 0 });
    expect(ok.stdout).toContain('created root@example.org (admin)');
    const invited = await runCli(sb, ['account', 'add', '--email', 'member@example.org', '--role', 'member']);
    expect(invited.stdout).toContain('invited member@example.org');
    const dup = await runCli(sb, ['account', 'add', '--email', 'root@example.org', '--role', 'admin', '--password-stdin'], 'root password is long');
    expect(dup.code).toBe(5); // wrong state: the account exists
    expect(dup.stderr).toContain('SEALDROP_E_CONFLICT');
    const weak = await runCli(sb, ['account', 'add', '--email', 'w@example.org', '--role', 'member', '--password-stdin'], 'short');
    expect([weak.code, weak.stderr]).toEqual([1, expect.stringContaining('SEALDROP_E_PASSWORD_POLICY')]);
    const svc = await runCli(sb, ['account', 'add', '--email', 'erp@example.org', '--role', 'service', '--password-stdin'], 'service password long');
    expect(svc.stderr).toContain('needs an owner');
    const svc2 = await runCli(sb, ['account', 'add', '--email', 'erp@example.org', '--role', 'service', '--owner', 'root@example.org', '--password-stdin'], 'service password long');
    expect(svc2.code, svc2.stderr).toBe(0);
    expect((await runCli(sb, ['account', 'add', '--email', 'x@example.org'])).code).toBe(2);
    expect((await runCli(sb, ['account', 'add', '--email', 'x@example.org', '--role', 'god'])).code).toBe(2);
    const bad = await runCli(sb, ['account', 'add', '--email', 'not-an-address', '--role', 'member']);
    expect([bad.code, bad.stderr]).toEqual([1, expect.stringContaining('SEALDROP_E_INVALID_EMAIL')]);
    const list = await runCli(sb, ['account', 'list']);
    expect(list.stdout.split('\n').filter(Boolean).map((l) => l.split('\t').slice(0, 3))).toEqual([
      ['erp@example.org', 'service', 'active'],
      ['member@example.org', 'member', 'invited'],
      ['root@example.org', 'admin', 'active'],
    ]);
    expect((await runCli(sb, ['migrate'])).stdout).toContain('database is up to date');
  });
});
