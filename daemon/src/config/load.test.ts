import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { storeOptionsFrom } from '../store/orm.ts';
import { ConfigError, loadConfig, redactConfig } from './load.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('starts from embedded defaults with no file and no environment', () => {
    const { config, paths } = loadConfig({ env: {}, cwd: '/srv/x' });
    expect(config.http).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(config.mail.transport).toBe('file');
    expect(config.deliveries.defaultExpiryDays).toBe(90);
    expect(paths).toEqual({
      dataDir: '/srv/x/data',
      blobDir: '/srv/x/data/blobs',
      sqlitePath: '/srv/x/data/sealdrop.db',
      mailDir: '/srv/x/data/mail',
      kekFile: '/srv/x/secrets/sealdrop.kek',
      hostKeyDir: '/srv/x/data/host-keys',
    });
  });

  it('reads YAML and lets the environment win, with typed values', () => {
    const f = file('a.yaml', 'http:\n  port: 9000\nmail:\n  smtp:\n    host: mail.example.org\n    requireTLS: false\n');
    const { config } = loadConfig({ file: f, env: { SEALDROP_HTTP__PORT: '9100', SEALDROP_MAIL__SMTP__REQUIRE_TLS: 'true', SEALDROP_SERVER__PUBLIC_BASE_URL: 'https://files.example.org' } });
    expect(config.http.port).toBe(9100);
    expect(config.mail.smtp).toMatchObject({ host: 'mail.example.org', requireTLS: true });
    expect(config.server.publicBaseUrl).toBe('https://files.example.org');
  });

  it('reads secrets from files (_FILE) but treats keys ending in File as plain keys', () => {
    const secret = file('smtp-pass', 's3cret\n');
    const { config } = loadConfig({ env: { SEALDROP_MAIL__SMTP__PASSWORD_FILE: secret, SEALDROP_CRYPTO__KEK_FILE: '/etc/sealdrop/kek' } });
    expect(config.mail.smtp.password).toBe('s3cret');
    expect(config.crypto.kekFile).toBe('/etc/sealdrop/kek');
    expect(redactConfig(config).mail.smtp.password).toBe('[redacted]');
    expect(JSON.stringify(redactConfig(config))).not.toContain('s3cret');
  });

  it('names every problem on its own line', () => {
    const f = file('bad.yaml', 'http:\n  port: "eighty"\n  colour: blue\nbogus: 1\ndeliveries:\n  defaultExpiryDays: 0\n');
    const p = problems(() => loadConfig({ file: f, env: { SEALDROP_NOPE__X: '1', SEALDROP_MAIL__SMTP__PASSWORD_FILE: '/does/not/exist' } }));
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^SEALDROP_NOPE__X: unknown configuration key/),
        expect.stringMatching(/^mail\.smtp\.password: cannot read secret file \/does\/not\/exist/),
        'http.port: expected number',
        'http.colour: unknown configuration key',
        'bogus: unknown configuration key',
        expect.stringMatching(/^deliveries\.defaultExpiryDays: /),
      ]),
    );
    expect(p.every((line) => !line.includes('\n'))).toBe(true);
  });

  it('selects PostgreSQL: url required, password from a file, both redacted', () => {
    expect(loadConfig({ env: {} }).config.database).toEqual({ driver: 'sqlite', poolMax: 10, autoMigrate: true, tls: {} });
    expect(problems(() => loadConfig({ env: { SEALDROP_DATABASE__DRIVER: 'postgresql' } }))).toEqual(['database.url: required when database.driver is postgresql (postgres://user@host:port/database)']);
    expect(problems(() => loadConfig({ env: { SEALDROP_DATABASE__DRIVER: 'postgresql', SEALDROP_DATABASE__URL: 'mysql://x@h/db' } }))).toEqual(['database.url: must be a postgres://user@host:port/database URL']);
    const secret = file('db-pass', 'db-s3cret\n');
    const { config } = loadConfig({
      env: { SEALDROP_DATABASE__DRIVER: 'postgresql', SEALDROP_DATABASE__URL: 'postgres://sealdrop:url-s3cret@db.example:5433/sealdrop', SEALDROP_DATABASE__PASSWORD_FILE: secret, SEALDROP_DATABASE__POOL_MAX: '4' },
    });
    expect(config.database).toMatchObject({ driver: 'postgresql', password: 'db-s3cret', poolMax: 4 });
    const shown = redactConfig(config);
    expect(shown.database).toMatchObject({ password: '[redacted]', url: 'postgres://sealdrop:[redacted]@db.example:5433/sealdrop' });
    expect(JSON.stringify(shown)).not.toMatch(/s3cret/);
  });

  it('reads PostgreSQL TLS from database.tls or the URL (sslmode, sslrootcert), and refuses what it would ignore', () => {
    const pg = (env: Record<string, string>) => loadConfig({ env: { SEALDROP_DATABASE__DRIVER: 'postgresql', SEALDROP_DATABASE__URL: 'postgres://s@db.example/sealdrop', ...env }, cwd: '/srv/sealdrop' });
    expect(storeOptionsFrom(pg({}))).toMatchObject({ tls: { mode: 'disable', caFile: undefined } });
    expect(storeOptionsFrom(pg({ SEALDROP_DATABASE__TLS__MODE: 'verify-full', SEALDROP_DATABASE__TLS__CA_FILE: 'ca.pem' }))).toMatchObject({ tls: { mode: 'verify-full', caFile: '/srv/sealdrop/ca.pem' } });
    expect(storeOptionsFrom(pg({ SEALDROP_DATABASE__URL: 'postgres://s@db.example/sealdrop?sslmode=verify-ca&sslrootcert=/etc/ssl/db-ca.pem' }))).toMatchObject({ tls: { mode: 'verify-ca', caFile: '/etc/ssl/db-ca.pem' } });
    expect(storeOptionsFrom(pg({ SEALDROP_DATABASE__URL: 'postgres://s@db.example/sealdrop?sslmode=require' }))).toMatchObject({ tls: { mode: 'require' } });
    // A parameter sealdrop would not read must not look as if it were in force.
    expect(problems(() => pg({ SEALDROP_DATABASE__URL: 'postgres://s@db.example/sealdrop?ssl=true&application_name=x' }))).toEqual([
      'database.url: the parameter "ssl" is not supported (sealdrop reads sslmode and sslrootcert; see database.tls)',
      'database.url: the parameter "application_name" is not supported (sealdrop reads sslmode and sslrootcert; see database.tls)',
    ]);
    expect(problems(() => pg({ SEALDROP_DATABASE__URL: 'postgres://s@db.example/sealdrop?sslmode=prefer' }))).toEqual(['database.url: sslmode "prefer" is not supported; use one of disable, require, verify-ca, verify-full']);
    expect(problems(() => pg({ SEALDROP_DATABASE__URL: 'postgres://s@db.example/sealdrop?sslmode=require', SEALDROP_DATABASE__TLS__MODE: 'verify-full' }))).toEqual(['database.tls.mode: "verify-full" contradicts sslmode=require in database.url; set one of them']);
    expect(problems(() => pg({ SEALDROP_DATABASE__TLS__MODE: 'require', SEALDROP_DATABASE__TLS__CA_FILE: 'ca.pem' }))).toEqual(['database.tls.caFile: only used with mode verify-ca or verify-full (the mode is require)']);
    expect(problems(() => pg({ SEALDROP_DATABASE__TLS__MODE: 'sometimes' }))).toEqual([expect.stringMatching(/^database\.tls\.mode: /)]);
  });

  it('validates drop folders', () => {
    const f = file(
      'folders.yaml',
      'dropFolders:\n  - name: invoices\n    owner: Alice@Example.org\n    recipients: [bob@partner.example]\n    level: 3\n  - name: invoices\n    owner: x@example.org\n    recipients: []\n    level: 7\n  - name: inbox\n    owner: nope\n    recipients: [a@b.example]\n    level: 1\n',
    );
    const p = problems(() => loadConfig({ file: f, env: {} }));
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^dropFolders\.1\.recipients: needs at least one recipient/),
        expect.stringMatching(/^dropFolders\.1\.level: /),
        expect.stringMatching(/^dropFolders\.2\.name: is reserved/),
        expect.stringMatching(/^dropFolders\.2\.owner: must be an e-mail address/),
      ]),
    );
    const ok = file('ok.yaml', 'dropFolders:\n  - name: invoices\n    owner: Alice@Example.org\n    recipients: bob@partner.example, carol@partner.example\n    level: 3\n');
    expect(loadConfig({ file: ok, env: {} }).config.dropFolders[0]).toMatchObject({ owner: 'alice@example.org', recipients: ['bob@partner.example', 'carol@partner.example'], subject: '{folder} {date}', writers: [] });
    const dup = file('dup.yaml', 'dropFolders:\n  - {name: a, owner: a@x.example, recipients: [b@x.example], level: 1}\n  - {name: A, owner: a@x.example, recipients: [b@x.example], level: 1}\n');
    expect(problems(() => loadConfig({ file: dup, env: {} }))).toEqual(['dropFolders.1.name: duplicate drop folder name "A"']);
  });

  it('reports unreadable and malformed files', () => {
    expect(problems(() => loadConfig({ file: path.join(dir, 'missing.yaml'), env: {} }))[0]).toMatch(/cannot read .*missing\.yaml: ENOENT/);
    expect(problems(() => loadConfig({ file: file('broken.yaml', 'http: [\n'), env: {} }))[0]).toMatch(/broken\.yaml:\d+: not valid YAML/);
    expect(problems(() => loadConfig({ file: file('list.yaml', '- 1\n'), env: {} }))[0]).toMatch(/top level must be a mapping/);
  });
});

describe('config/sealdrop.yaml', () => {
  it('is valid and states exactly the embedded defaults', () => {
    const file = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../config/sealdrop.yaml');
    expect(loadConfig({ file, env: {} }).config).toEqual(loadConfig({ env: {} }).config);
  });
});
