/**
 * PostgreSQL for the tests: one throwaway cluster for the whole run (started by the global
 * setup: `initdb` into a temp folder, a free loopback port, the socket folder inside it, fsync
 * off, trust for 127.0.0.1 only), and a fresh database per test file or suite from it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { knex } from '@mikro-orm/knex';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the test cluster's `postgres` database. */
    postgresUrl: string;
    /** The test cluster's self-signed TLS certificate (PEM), to verify it with. */
    postgresCaFile: string;
  }
}

/** A running test cluster. */
export interface PostgresCluster {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  url: string;
  /** Its self-signed certificate (for 127.0.0.1 and localhost): TLS is on, and optional. */
  caFile: string;
  dir: string;
  stop(): void;
}

/** The folder holding initdb, pg_ctl and postgres: Debian's PostgreSQL 15 first, then any other version, then PATH. */
function binDir(): string {
  const debian = '/usr/lib/postgresql';
  const versions = existsSync(debian) ? readdirSync(debian).sort((a, b) => (a === '15' ? -1 : b === '15' ? 1 : Number(b) - Number(a))) : [];
  for (const v of versions) {
    const dir = path.join(debian, v, 'bin');
    if (['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(path.join(dir, b)))) return dir;
  }
  try {
    return path.dirname(execFileSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).trim());
  } catch {
    throw new Error('PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in /usr/lib/postgresql/*/bin or PATH: install the Debian package postgresql (.ci/run does)');
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts a cluster and waits until it accepts connections. initdb refuses to run as root, so
 * as root every server command runs as the `postgres` user, which owns the folder.
 */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const bin = binDir();
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sealdrop-pg-'));
  const run = (tool: string, args: string[]) => {
    const [cmd, argv] = root ? ['runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]] : [path.join(bin, tool), args];
    try {
      execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      throw new Error(`${tool} failed: ${e.stderr?.toString().trim() || e.message}`);
    }
  };
  const owner = { uid: -1, gid: -1 };
  try {
    if (root) {
      const id = (flag: string) => {
        try {
          return Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
        } catch {
          throw new Error('running as root, the test cluster runs as the user postgres, which does not exist: install the Debian package postgresql');
        }
      };
      owner.uid = id('-u');
      owner.gid = id('-g');
      chownSync(dir, owner.uid, owner.gid);
    }
    const data = path.join(dir, 'data');
    run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
    writeFileSync(path.join(data, 'pg_hba.conf'), '# sealdrop tests: trust on IPv4 loopback only\nhost all all 127.0.0.1/32 trust\n');
    // TLS on (clients choose): a throwaway self-signed certificate for the loopback address.
    const cert = path.join(data, 'server.crt');
    const key = path.join(data, 'server.key');
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=sealdrop test postgres', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      throw new Error(`openssl could not make the test cluster's certificate (Debian package openssl): ${(err as { stderr?: Buffer }).stderr?.toString().trim() ?? (err as Error).message}`);
    }
    if (root) for (const f of [cert, key]) chownSync(f, owner.uid, owner.gid);
    chmodSync(key, 0o600);
    const port = await freePort();
    appendFileSync(
      path.join(data, 'postgresql.conf'),
      [`listen_addresses = '127.0.0.1'`, `port = ${port}`, `unix_socket_directories = '${dir}'`, 'fsync = off', 'synchronous_commit = off', 'full_page_writes = off', 'ssl = on', ''].join('\n'),
    );
    run('pg_ctl', ['-D', data, '-l', path.join(dir, 'server.log'), '-w', '-t', '60', 'start']);
    let stopped = false;
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      caFile: path.join(data, 'server.crt'),
      dir,
      stop() {
        if (stopped) return;
        stopped = true;
        try {
          run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Runs `fn` on a one-connection client of the cluster's `postgres` database. */
async function asAdmin<T>(fn: (k: ReturnType<typeof knex>) => Promise<T>): Promise<T> {
  const k = knex({ client: 'pg', connection: inject('postgresUrl'), pool: { min: 0, max: 1 } });
  try {
    return await fn(k);
  } finally {
    await k.destroy();
  }
}

/** A database of its own for a test file or suite. */
export interface TestDatabase {
  /** `postgres://postgres@127.0.0.1:<port>/<name>`. */
  url: string;
  /** Drops it (closing what is still connected). */
  drop(): Promise<void>;
}

/** Creates an empty database in the test cluster. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `sealdrop_test_${randomBytes(6).toString('hex')}`;
  await asAdmin((k) => k.raw('create database ??', [name]));
  const url = new URL(inject('postgresUrl'));
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => asAdmin((k) => k.raw('drop database if exists ?? with (force)', [name])).then(() => undefined) };
}

/** Every row of every table of the database at `url` as text (for canary scans: PostgreSQL files are not ours to read). */
export async function dumpDatabase(url: string): Promise<Buffer> {
  const k = knex({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
  try {
    const tables = await k.raw<{ rows: Array<{ name: string }> }>("select tablename as name from pg_tables where schemaname = 'public' order by 1");
    const parts: string[] = [];
    for (const { name } of tables.rows) {
      const rows = await k.raw<{ rows: Array<{ row: string }> }>('select t::text as row from ?? t', [name]);
      parts.push(`-- ${name}`, ...rows.rows.map((r) => r.row));
    }
    return Buffer.from(parts.join('\n'));
  } finally {
    await k.destroy();
  }
}

/** Configuration overrides that point the daemon at the PostgreSQL database `url`. */
export function postgresEnv(url: string): Record<string, string> {
  return { SEALDROP_DATABASE__DRIVER: 'postgresql', SEALDROP_DATABASE__URL: url };
}
