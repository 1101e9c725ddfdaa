/**
 * The `sealdrop` command line: `serve`, `migrate`, `account add|list`, `config check|show`.
 * Exit codes: 0 ok, 1 failure, 2 usage or configuration error.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { ConfigError, loadConfig, redactConfig, type LoadedConfig } from '../config/load.ts';
import { CoreEvents } from '../core/events.ts';
import { Core } from '../core/index.ts';
import { isSealdropError } from '../core/errors.ts';
import { Kek } from '../crypto/at-rest.ts';
import { createLogger } from '../log.ts';
import { startDaemon } from '../main.ts';
import { FsBlobStore } from '../store/fs-blob-store.ts';
import { migrate, openStore } from '../store/orm.ts';

/** Exit codes. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

const GLOBAL_HELP = `sealdrop — end-to-end encrypted file delivery gateway

Usage: sealdrop <command> [options]

Commands:
  serve                 start the daemon (HTTP API; mail worker; timers)
  migrate               apply pending database migrations and exit
  account add           create an account (with a password from stdin, or invited by mail)
  account list          list accounts
  ssh-key add|list|remove  manage the SSH keys accounts log in with over SFTP
  host-keys             print the SFTP host key fingerprints (generating keys on first use)
  config check          validate the configuration and exit
  config show           print the effective configuration (secrets redacted)
  help [command]        show help for a command

Options for every command:
  --config FILE         YAML configuration file (default: none; or $SEALDROP_CONFIG)
  -h, --help            show help

Configuration keys can be overridden with SEALDROP_<SECTION>__<KEY>=value,
secrets read from files with SEALDROP_<SECTION>__<KEY>_FILE=/path.
Exit codes: 0 ok, 1 failure, 2 usage or configuration error.`;

const HELP: Record<string, string> = {
  serve: `Usage: sealdrop serve [--config FILE]

Starts the daemon with the configuration (defaults: SQLite and blobs in ./data,
mail as .eml files in ./data/mail, HTTP on 127.0.0.1:8080). Stops gracefully on
SIGTERM or SIGINT: finishes running transfers (server.shutdownTimeoutSeconds),
sends due mail, closes the database.`,
  migrate: `Usage: sealdrop migrate [--config FILE]

Applies pending database migrations and exits. (serve does this itself unless
database.autoMigrate is false.)`,
  account: `Usage: sealdrop account add --email E --role admin|member|service [--owner M] [--password-stdin]
       sealdrop account list

add:  creates an account. With --password-stdin the password is read from
      standard input (up to the end, one trailing newline removed) and the account
      is active at once; without it the account is invited: the invitation mail is
      queued and sent by the running daemon.
      --owner M is required for service accounts: the member who holds the key
      for its uploads and releases them.
list: prints the accounts, one per line (email, role, state, owner).`,
  'ssh-key': `Usage: sealdrop ssh-key add --email E (--key-file F | --key-stdin)
       sealdrop ssh-key list --email E
       sealdrop ssh-key remove FINGERPRINT|ID

add:    registers an OpenSSH public key (the content of an id_*.pub file) for the account;
        accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa of 2048 bits or more.
list:   prints the account's keys: fingerprint, type, comment, last use.
remove: removes a key by its SHA256 fingerprint or id.`,
  'host-keys': `Usage: sealdrop host-keys [--config FILE]

Prints the SFTP server's host keys (ed25519 and RSA) with their SHA256 fingerprints, so users
can check them on first connect. Keys are generated in sftp.hostKeyDir on first use and kept.`,
  config: `Usage: sealdrop config check [--config FILE]
       sealdrop config show [--config FILE]

check: validates the configuration; prints one line per problem and exits 2 if
       it is invalid.
show:  prints the effective configuration as YAML with secrets redacted.`,
};

const common: ParseArgsConfig['options'] = {
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

function usage(message: string, command?: string): number {
  console.error(`sealdrop: ${message}`);
  console.error(command && HELP[command] ? HELP[command] : 'Run "sealdrop --help" for usage.');
  return EXIT.usage;
}

function load(configFile: string | undefined): LoadedConfig {
  return loadConfig({ file: configFile ?? process.env.SEALDROP_CONFIG });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  process.umask(0o077); // database, keys, blobs, mail files: owner only
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h') {
    console.log(GLOBAL_HELP);
    return command ? EXIT.ok : EXIT.usage;
  }
  if (command === 'help') {
    const topic = rest[0];
    console.log(topic && HELP[topic] ? HELP[topic] : GLOBAL_HELP);
    return EXIT.ok;
  }
  if (!(command in HELP)) return usage(`unknown command "${command}"`);
  try {
    switch (command) {
      case 'serve':
        return await serve(rest);
      case 'migrate':
        return await migrateCommand(rest);
      case 'account':
        return await account(rest);
      case 'config':
        return await configCommand(rest);
      case 'ssh-key':
        return await sshKey(rest);
      case 'host-keys':
        return await hostKeys(rest);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) console.error(`config error: ${p}`);
      return EXIT.usage;
    }
    if (err instanceof UsageError) return usage(err.message, command);
    if (isSealdropError(err)) {
      console.error(`sealdrop: ${err.code}: ${err.message}`);
      return EXIT.failure;
    }
    console.error(`sealdrop: ${(err as Error).message ?? String(err)}`);
    return EXIT.failure;
  }
  return EXIT.failure;
}

class UsageError extends Error {}

function parse(args: string[], options: ParseArgsConfig['options'], positionals = false) {
  try {
    return parseArgs({ args, options: { ...common, ...options }, allowPositionals: positionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function serve(args: string[]): Promise<number> {
  const { values } = parse(args, {});
  if (values.help) {
    console.log(HELP.serve);
    return EXIT.ok;
  }
  const loaded = load(values.config as string | undefined);
  const daemon = await startDaemon(loaded);
  return new Promise<number>((resolve) => {
    const shutdown = (signal: string) => {
      daemon.log.info({ signal }, 'signal received');
      daemon.stop().then(
        () => resolve(EXIT.ok),
        (err: unknown) => {
          daemon.log.error({ err }, 'shutdown failed');
          resolve(EXIT.failure);
        },
      );
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
}

async function migrateCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {});
  if (values.help) {
    console.log(HELP.migrate);
    return EXIT.ok;
  }
  const { paths } = load(values.config as string | undefined);
  const orm = await openStore({ sqlitePath: paths.sqlitePath });
  try {
    const applied = await migrate(orm);
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
    return EXIT.ok;
  } finally {
    await orm.close();
  }
}

/** A core over the configured store, for one-shot admin commands. */
async function withCore<T>(loaded: LoadedConfig, fn: (core: Core) => Promise<T>): Promise<T> {
  const log = createLogger(process.env.LOG_LEVEL ?? 'warn');
  const orm = await openStore({ sqlitePath: loaded.paths.sqlitePath, migrate: true });
  try {
    const kek = await Kek.load(loaded.paths.kekFile, (file) => console.error(`sealdrop: generated a new key-encryption key in ${file}; back it up`));
    const blobs = new FsBlobStore(loaded.paths.blobDir);
    const core = new Core({ orm, config: loaded.config, blobs, kek, log, clock: { now: () => new Date() }, events: new CoreEvents() });
    return await fn(core);
  } finally {
    await orm.close();
  }
}

async function account(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (!sub || sub === '--help' || sub === '-h') {
    console.log(HELP.account);
    return sub ? EXIT.ok : EXIT.usage;
  }
  if (sub === 'add') {
    const { values } = parse(rest, { email: { type: 'string' }, role: { type: 'string' }, owner: { type: 'string' }, 'password-stdin': { type: 'boolean' } });
    if (values.help) {
      console.log(HELP.account);
      return EXIT.ok;
    }
    if (!values.email) throw new UsageError('--email is required');
    if (!values.role) throw new UsageError('--role is required (admin, member or service)');
    if (!['admin', 'member', 'service'].includes(values.role as string)) throw new UsageError('--role must be admin, member or service');
    const loaded = load(values.config as string | undefined);
    const password = values['password-stdin'] ? await readStdin() : undefined;
    if (values['password-stdin'] && !password) throw new UsageError('--password-stdin read an empty password');
    const result = await withCore(loaded, (core) =>
      core.accounts.createAccount(CLI_ACTOR, { email: values.email, role: values.role, owner: values.owner, password }),
    );
    console.log(result.invited ? `invited ${result.account.email} (${result.account.role}); the invitation mail is queued` : `created ${result.account.email} (${result.account.role})`);
    return EXIT.ok;
  }
  if (sub === 'list') {
    const { values } = parse(rest, {});
    const loaded = load(values.config as string | undefined);
    const accounts = await withCore(loaded, (core) =>
      core.accounts.listAccounts({ accountId: '', email: 'cli', role: 'admin', scopes: new Set(['admin']), auth: 'cli', via: 'cli' }),
    );
    for (const a of accounts) console.log([a.email, a.role, a.state, a.secupassActive ? 'secupass' : '-', a.owner ?? '-'].join('\t'));
    return EXIT.ok;
  }
  throw new UsageError(`unknown account command "${sub}"`);
}

const CLI_ACTOR = { accountId: null, email: 'cli' };

async function sshKey(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (!sub || sub === '--help' || sub === '-h') {
    console.log(HELP['ssh-key']);
    return sub ? EXIT.ok : EXIT.usage;
  }
  if (sub === 'add') {
    const { values } = parse(rest, { email: { type: 'string' }, 'key-file': { type: 'string' }, 'key-stdin': { type: 'boolean' } });
    if (!values.email) throw new UsageError('--email is required');
    if (!values['key-file'] === !values['key-stdin']) throw new UsageError('give the key with --key-file F or --key-stdin');
    const line = values['key-file'] ? (await import('node:fs')).readFileSync(values['key-file'] as string, 'utf8') : await readStdin();
    const loaded = load(values.config as string | undefined);
    const key = await withCore(loaded, (core) => core.sshKeys.add(CLI_ACTOR, { email: values.email }, line));
    console.log(`added ${key.algorithm} ${key.fingerprint} for ${String(values.email).toLowerCase()}`);
    return EXIT.ok;
  }
  if (sub === 'list') {
    const { values } = parse(rest, { email: { type: 'string' } });
    if (!values.email) throw new UsageError('--email is required');
    const loaded = load(values.config as string | undefined);
    const keys = await withCore(loaded, (core) => core.sshKeys.list({ email: values.email }));
    for (const k of keys) console.log([k.fingerprint, k.algorithm, k.comment ?? '-', k.lastUsedAt ?? 'never used'].join('\t'));
    return EXIT.ok;
  }
  if (sub === 'remove') {
    const { values, positionals } = parse(rest, {}, true);
    if (positionals.length !== 1) throw new UsageError('give one fingerprint (SHA256:...) or key id');
    const loaded = load(values.config as string | undefined);
    await withCore(loaded, (core) => core.sshKeys.remove(CLI_ACTOR, positionals[0], { admin: true }));
    console.log(`removed ${positionals[0]}`);
    return EXIT.ok;
  }
  throw new UsageError(`unknown ssh-key command "${sub}"`);
}

async function hostKeys(args: string[]): Promise<number> {
  const { values } = parse(args, {});
  if (values.help) {
    console.log(HELP['host-keys']);
    return EXIT.ok;
  }
  const loaded = load(values.config as string | undefined);
  const { loadHostKeys } = await import('../protocols/sftp/host-keys.ts');
  for (const k of loadHostKeys(loaded.paths.hostKeyDir, (g) => console.error(`generated ${g.type} host key ${g.file}`))) {
    console.log(`${k.type}\t${k.fingerprint}\t${k.publicKey}`);
  }
  return EXIT.ok;
}

async function configCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parse(rest, {});
  if (!sub || values.help || sub === '--help' || sub === '-h') {
    console.log(HELP.config);
    return sub ? EXIT.ok : EXIT.usage;
  }
  if (sub !== 'check' && sub !== 'show') throw new UsageError(`unknown config command "${sub}"`);
  const loaded = load(values.config as string | undefined);
  if (sub === 'check') {
    console.log(`configuration is valid${loaded.file ? ` (${loaded.file})` : ' (defaults and environment)'}`);
  } else {
    console.log(toYaml({ ...redactConfig(loaded.config), resolvedPaths: loaded.paths }));
  }
  return EXIT.ok;
}
