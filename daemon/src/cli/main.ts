/**
 * The `sealdrop` command line. Server commands (`serve`, `migrate`, `account`, `token`,
 * `secupass reset`, `audit verify`, `expire`, `ssh-key`, `host-keys`, `config`) work on the
 * configured store directly; client commands (`send`, `release`, `fetch`, `key export`,
 * `deliveries`, `status`) talk to a running daemon's API with an API token.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { ConfigError, loadConfig, redactConfig, type LoadedConfig } from '../config/load.ts';
import { CoreEvents } from '../core/events.ts';
import { Core } from '../core/index.ts';
import { isSealdropError } from '../core/errors.ts';
import { verifyAuditChain } from '../core/audit.ts';
import { ClientError } from './api-client.ts';
import { fetchDeliveries, keyExport, listDeliveries, release, send, status, type ClientRun } from './client.ts';
import { EXIT, EXIT_CODES_HELP, exitCodeFor } from './exit.ts';
import { runRetention } from '../retention.ts';
import { createInterface } from 'node:readline/promises';
import { writeFileSync } from 'node:fs';
import { Kek } from '../crypto/at-rest.ts';
import { createLogger } from '../log.ts';
import { startDaemon } from '../main.ts';
import { FsBlobStore } from '../store/fs-blob-store.ts';
import { AccountSchema, ApiTokenSchema } from '../store/entities.ts';
import type { Principal } from '../core/context.ts';
import { migrateIsolated, openStore, storeOptionsFrom } from '../store/orm.ts';

export { EXIT } from './exit.ts';

const GLOBAL_HELP = `sealdrop — end-to-end encrypted file delivery gateway

Usage: sealdrop <command> [options]

Server commands (on the machine running the daemon; they open its database):
  serve                 start the daemon (HTTP API, web UI, WebDAV, SFTP, mail, retention)
  migrate               apply pending database migrations and exit
  account add|list|disable|enable|invite   manage accounts
  token create|list|revoke   API tokens for cron jobs and scripts
  secupass reset EMAIL  destroy an account's key (it loses access to what was encrypted for it)
  audit verify          check the audit trail's hash chain
  expire                run retention now (expired deliveries, tokens, old mail files)
  ssh-key add|list|remove  manage the SSH keys accounts log in with over SFTP
  host-keys             print the SFTP host key fingerprints (generating keys on first use)
  config check          validate the configuration and exit
  config show           print the effective configuration (secrets redacted)

Client commands (anywhere; talk to a daemon with an API token; encrypt and decrypt here):
  send FILE...          encrypt files here and deliver them
  release ID...|--all-pending   release deliveries to recipients (re-wraps keys here)
  fetch [ID...] --out DIR        download and decrypt deliveries
  key export            your public key, or with --gnupg your private key for GnuPG
  deliveries            list your inbox or outbox
  status ID             show one delivery
  help [command]        show help for a command

Options for every server command:
  --config FILE         YAML configuration file (default: none; or $SEALDROP_CONFIG)
Options for every client command:
  --server URL          the daemon (default $SEALDROP_SERVER or http://127.0.0.1:8080)
  --token-file FILE     API token (or $SEALDROP_TOKEN_FILE, or $SEALDROP_TOKEN)
  --json                machine-readable output on stdout
  -q, --quiet           no progress or notes on stderr
  -h, --help            show help

Configuration keys can be overridden with SEALDROP_<SECTION>__<KEY>=value,
secrets read from files with SEALDROP_<SECTION>__<KEY>_FILE=/path.
${EXIT_CODES_HELP}`;

const CLIENT_OPTIONS = `Client options: --server URL, --token-file FILE (or $SEALDROP_TOKEN_FILE / $SEALDROP_TOKEN),
--json, -q/--quiet. The SecuPass comes from --secupass-file FILE, $SEALDROP_SECUPASS_FILE,
$SEALDROP_SECUPASS or a prompt on a terminal — never from an argument.
${EXIT_CODES_HELP}`;

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
       sealdrop account disable|enable EMAIL
       sealdrop account invite EMAIL [--role member|admin]

add:  creates an account. With --password-stdin the password is read from
      standard input (up to the end, one trailing newline removed) and the account
      is active at once; without it the account is invited: the invitation mail is
      queued and sent by the running daemon.
      --owner M is required for service accounts: the member who holds the key
      for its uploads and releases them.
list: prints the accounts, one per line (email, role, state, SecuPass, owner).
disable: the account can no longer log in, use tokens or SFTP/WebDAV; enable undoes it.
invite: sends (again) the invitation mail of an account that has not registered yet,
        or creates the account invited (role member unless --role).`,
  token: `Usage: sealdrop token create --email E --scopes send,release,fetch[,admin] [--name N] [--days D] [--out FILE]
       sealdrop token list --email E
       sealdrop token revoke ID

create: makes an API token for the account and prints it once (or writes it to FILE with
        mode 0600). Scopes the account's role allows: admin: all; member: send, release,
        fetch; service: send. --days defaults to 90 (at most accounts.apiTokenMaxDays).
list:   the account's tokens: id, name, scopes, expiry, last use (never the token).
revoke: revokes a token at once.`,
  secupass: `Usage: sealdrop secupass reset EMAIL [--yes]

Destroys the account's SecuPass key and every key wrap made for it. The user loses access,
for good, to everything encrypted for the old key; as an owner, their deliveries awaiting
release become unreleasable. Senders and the user are told by mail. Asks for confirmation
unless --yes.`,
  audit: `Usage: sealdrop audit verify [--config FILE]

Recomputes the audit trail's hash chain; exit 0 if intact, 1 naming the first broken record.`,
  expire: `Usage: sealdrop expire [--config FILE]

Runs retention now (the daemon does it every deliveries.expirySweepSeconds): deliveries past
their expiry lose blobs and key wraps (the record and audit trail stay), expired sessions and
API tokens are deleted, expired WebDAV locks dropped, and .eml files of the file transport
older than mail.fileRetentionDays removed.`,
  send: `Usage: sealdrop send FILE... --to EMAIL [--to EMAIL...] [--level 1-4] [--subject S]
                     [--message-file F] [--expires-days N]

Creates a delivery, uploads the files and sends it. Level 3 and 4 (default 3): each file is
encrypted on this machine (OpenPGP, to the owner's key and the active recipients' keys, which
the daemon names) before upload; recipients without an active SecuPass get it when you release.
Level 4 encrypts the message too. Levels 1 and 2 are encrypted by the daemon on arrival.
Prints the delivery id (--json: the delivery). On a failure the unsent delivery is revoked.

${CLIENT_OPTIONS}`,
  release: `Usage: sealdrop release ID... [--secupass-file F] [--accept-changed-keys]
       sealdrop release --all-pending [--secupass-file F] [--accept-changed-keys]

Releases deliveries you own to recipients who have activated their SecuPass: your private
key is unlocked here with your SecuPass and each file's session key re-wrapped to the
recipient's key; the daemon stores the wraps. A recipient whose key differs from the one you
last released to at that address is skipped (exit 5) unless --accept-changed-keys.

${CLIENT_OPTIONS}`,
  fetch: `Usage: sealdrop fetch [ID...] --out DIR [--all] [--overwrite] [--secupass-file F]

Downloads deliveries released to you into DIR/<delivery-id>/ and decrypts level 3/4 files
here. Each file is written to a temporary name and renamed only after its integrity check
(exit 7 and no file on failure). Without ID: deliveries not downloaded yet (--all: every
available one). Existing files are not replaced unless --overwrite.

${CLIENT_OPTIONS}`,
  key: `Usage: sealdrop key export [--gnupg] [--out FILE] [--force] [--secupass-file F]

Without --gnupg: your public key (armored). With --gnupg: your private key re-protected for
GnuPG 2.2 (which cannot read the argon2 protection sealdrop uses) with the same SecuPass,
for "gpg --import"; keep the file safe.

${CLIENT_OPTIONS}`,
  deliveries: `Usage: sealdrop deliveries [--box inbox|outbox] [--state S] [--limit N]

Lists deliveries: inbox (default; state is your recipient state: awaiting_release,
available, downloaded, ...) or outbox (open, sent, revoked, expired). One per line: id,
state, level, created, sender or recipients, files, subject.

${CLIENT_OPTIONS}`,
  status: `Usage: sealdrop status ID

Shows one delivery: subject, state, files with sizes, recipients with their states and keys.

${CLIENT_OPTIONS}`,
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
      case 'token':
        return await tokenCommand(rest);
      case 'secupass':
        return await secupassCommand(rest);
      case 'audit':
        return await auditCommand(rest);
      case 'expire':
        return await expireCommand(rest);
      case 'send':
      case 'release':
      case 'fetch':
      case 'key':
      case 'deliveries':
      case 'status':
        return await clientCommand(command, rest);
    }
  } catch (err) {
    if (err instanceof ClientError) {
      if (err.exit === EXIT.usage && err.code === 'USAGE') return usage(err.message, command);
      reportError(err.code, err.message, err.exit, rest.includes('--json'));
      return err.exit;
    }
    if (err instanceof ConfigError) {
      for (const p of err.problems) console.error(`config error: ${p}`);
      return EXIT.usage;
    }
    if (err instanceof UsageError) return usage(err.message, command);
    if (isSealdropError(err)) {
      const exit = exitCodeFor(err.code);
      reportError(err.code, err.message, exit, rest.includes('--json'));
      return exit;
    }
    console.error(`sealdrop: ${(err as Error).message ?? String(err)}`);
    return EXIT.failure;
  }
  return EXIT.failure;
}

class UsageError extends Error {}

function reportError(code: string, message: string, exit: number, json: boolean): void {
  console.error(`sealdrop: ${code}: ${message}`);
  if (json) console.log(JSON.stringify({ error: { code, message, exitCode: exit } }));
}

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
    process.on('SIGHUP', () => {
      daemon.log.info({ signal: 'SIGHUP' }, 'reloading drop folders and TLS certificates');
      Promise.resolve()
        .then(() => daemon.reload(load(values.config as string | undefined)))
        .catch((err: unknown) => {
          const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
          daemon.log.error({ problems }, 'reload failed; the running configuration stays');
        });
    });
  });
}

async function migrateCommand(args: string[]): Promise<number> {
  const { values } = parse(args, {});
  if (values.help) {
    console.log(HELP.migrate);
    return EXIT.ok;
  }
  const applied = await migrateIsolated(storeOptionsFrom(load(values.config as string | undefined)));
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
  return EXIT.ok;
}

/** A core over the configured store, for one-shot admin commands. */
async function withCore<T>(loaded: LoadedConfig, fn: (core: Core) => Promise<T>): Promise<T> {
  const log = createLogger(process.env.LOG_LEVEL ?? 'warn');
  const orm = await openStore({ ...storeOptionsFrom(loaded), migrate: true });
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
  if (sub === 'disable' || sub === 'enable') {
    const { values, positionals } = parse(rest, {}, true);
    if (positionals.length !== 1) throw new UsageError(`give one e-mail address: sealdrop account ${sub} EMAIL`);
    const loaded = load(values.config as string | undefined);
    const a = await withCore(loaded, (core) => core.accounts.setDisabled(CLI_ACTOR, positionals[0], sub === 'disable'));
    console.log(`${a.email} is ${a.state}`);
    return EXIT.ok;
  }
  if (sub === 'invite') {
    const { values, positionals } = parse(rest, { role: { type: 'string' } }, true);
    if (positionals.length !== 1) throw new UsageError('give one e-mail address: sealdrop account invite EMAIL');
    const role = (values.role as string | undefined) ?? 'member';
    if (!['admin', 'member'].includes(role)) throw new UsageError('--role must be member or admin (service accounts are created with account add --password-stdin)');
    const loaded = load(values.config as string | undefined);
    const text = await withCore(loaded, async (core) => {
      const email = positionals[0] as string;
      const em = core.deps.orm.em.fork();
      const existing = await core.accounts.findByEmail(em, email.trim().toLowerCase());
      if (existing) {
        await core.accounts.resendInvitation(cliAdmin(), email);
        return `invitation to ${existing.email} sent again; the mail is queued`;
      }
      const r = await core.accounts.createAccount(CLI_ACTOR, { email, role });
      return `invited ${r.account.email} (${r.account.role}); the invitation mail is queued`;
    });
    console.log(text);
    return EXIT.ok;
  }
  throw new UsageError(`unknown account command "${sub}"`);
}

/** The CLI acting with admin rights (for core calls that take a principal). */
function cliAdmin(): Principal {
  return { accountId: '', email: 'cli', role: 'admin', scopes: new Set(['send', 'release', 'fetch', 'admin']), auth: 'cli', via: 'cli' };
}

/** The account `email` as a CLI principal (API tokens are made for it). */
async function principalOfAccount(core: Core, email: unknown): Promise<Principal> {
  if (typeof email !== 'string' || !email) throw new UsageError('--email is required');
  const account = await core.accounts.findByEmail(core.deps.orm.em.fork(), email.trim().toLowerCase());
  if (!account) throw new ClientError('SEALDROP_E_NOT_FOUND', `no account ${email}`, EXIT.notFound);
  const p = await core.accounts.principalFor(account.id, 'cli', 'cli');
  if (!p) throw new ClientError('SEALDROP_E_ACCOUNT_DISABLED', `${account.email} is not active (${account.state})`, EXIT.auth);
  return p;
}

async function tokenCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (!sub || sub === '--help' || sub === '-h') {
    console.log(HELP.token);
    return sub ? EXIT.ok : EXIT.usage;
  }
  if (sub === 'create') {
    const { values } = parse(rest, { email: { type: 'string' }, scopes: { type: 'string' }, name: { type: 'string' }, days: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } });
    if (!values.scopes) throw new UsageError('--scopes is required, e.g. --scopes send,fetch');
    const days = values.days === undefined ? undefined : Number(values.days);
    if (days !== undefined && !Number.isInteger(days)) throw new UsageError('--days must be a whole number');
    const loaded = load(values.config as string | undefined);
    const { token, tokenInfo } = await withCore(loaded, async (core) =>
      core.accounts.createApiToken(await principalOfAccount(core, values.email), {
        name: values.name ?? 'cli token',
        scopes: String(values.scopes).split(',').map((x) => x.trim()).filter(Boolean),
        ...(days !== undefined ? { expiresInDays: days } : {}),
      }),
    );
    if (values.out) {
      writeFileSync(values.out as string, `${token}\n`, { mode: 0o600, flag: 'wx' });
      if (values.json) console.log(JSON.stringify({ token: tokenInfo, file: values.out }));
      else console.error(`token ${tokenInfo.id} (${tokenInfo.scopes.join(',')}, expires ${tokenInfo.expiresAt}) written to ${values.out}`);
    } else if (values.json) {
      console.log(JSON.stringify({ token: tokenInfo, secret: token }));
    } else {
      console.log(token);
      console.error(`token ${tokenInfo.id} (${tokenInfo.scopes.join(',')}, expires ${tokenInfo.expiresAt}); shown once`);
    }
    return EXIT.ok;
  }
  if (sub === 'list') {
    const { values } = parse(rest, { email: { type: 'string' }, json: { type: 'boolean' } });
    const loaded = load(values.config as string | undefined);
    const tokens = await withCore(loaded, async (core) => core.accounts.listApiTokens(await principalOfAccount(core, values.email)));
    if (values.json) console.log(JSON.stringify({ tokens }));
    else for (const t of tokens) console.log([t.id, t.name, t.scopes.join(','), t.revokedAt ? `revoked ${t.revokedAt}` : `expires ${t.expiresAt}`, t.lastUsedAt ? `used ${t.lastUsedAt}` : 'never used'].join('\t'));
    return EXIT.ok;
  }
  if (sub === 'revoke') {
    const { values, positionals } = parse(rest, {}, true);
    if (positionals.length !== 1) throw new UsageError('give one token id (see sealdrop token list)');
    const loaded = load(values.config as string | undefined);
    await withCore(loaded, async (core) => {
      const row = await core.deps.orm.em.fork().findOne(ApiTokenSchema, { id: positionals[0] as string });
      if (!row) throw new ClientError('SEALDROP_E_NOT_FOUND', `no token ${positionals[0]}`, EXIT.notFound);
      const owner = await core.deps.orm.em.fork().findOneOrFail(AccountSchema, { id: row.accountId });
      await core.accounts.revokeApiToken({ ...cliAdmin(), accountId: owner.id, email: owner.email }, row.id);
    });
    console.log(`revoked ${positionals[0]}`);
    return EXIT.ok;
  }
  throw new UsageError(`unknown token command "${sub}"`);
}

async function secupassCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'reset') {
    console.log(HELP.secupass);
    return sub === '--help' || sub === '-h' ? EXIT.ok : EXIT.usage;
  }
  const { values, positionals } = parse(rest, { yes: { type: 'boolean' } }, true);
  if (values.help) {
    console.log(HELP.secupass);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError('give one e-mail address: sealdrop secupass reset EMAIL');
  const email = positionals[0] as string;
  if (!values.yes) {
    if (!process.stdin.isTTY) throw new UsageError('not on a terminal: confirm with --yes');
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    const answer = await rl.question(`Reset the SecuPass of ${email}? They lose access to everything encrypted for their current key, for good. Type the address to confirm: `);
    rl.close();
    if (answer.trim().toLowerCase() !== email.trim().toLowerCase()) {
      console.error('not confirmed; nothing changed');
      return EXIT.failure;
    }
  }
  const loaded = load(values.config as string | undefined);
  const r = await withCore(loaded, (core) => core.secupass.adminReset(CLI_ACTOR, email));
  console.log(`reset: key ${r.fingerprint} destroyed; ${r.accessLost} delivery access(es) lost, ${r.unreleasable} delivery(ies) now unreleasable`);
  return EXIT.ok;
}

async function auditCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'verify') {
    console.log(HELP.audit);
    return sub === '--help' || sub === '-h' ? EXIT.ok : EXIT.usage;
  }
  const { values } = parse(rest, { json: { type: 'boolean' } });
  const loaded = load(values.config as string | undefined);
  const r = await withCore(loaded, (core) => verifyAuditChain(core.deps.orm.em.fork()));
  if (values.json) console.log(JSON.stringify(r));
  else if (r.ok) console.log(`audit trail intact: ${r.events} records`);
  else console.error(`audit trail BROKEN at record ${r.brokenAt}: ${r.reason} (${r.events} records verified before it)`);
  return r.ok ? EXIT.ok : EXIT.failure;
}

async function expireCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' } });
  if (values.help) {
    console.log(HELP.expire);
    return EXIT.ok;
  }
  const loaded = load(values.config as string | undefined);
  const r = await withCore(loaded, (core) => runRetention(core, loaded.config.mail.transport === 'file' ? loaded.paths.mailDir : undefined, { fullScan: true }));
  if (values.json) console.log(JSON.stringify(r));
  else {
    console.log(
      `expired deliveries: ${r.expiredDeliveries}; removed: ${r.sessions} sessions, ${r.apiTokens} API tokens, ${r.accountTokens} e-mail tokens, ${r.mailFiles} mail files, ` +
        `${r.tempBlobs} temporary and ${r.orphanBlobs} unreferenced blobs, ${r.emptyFolders} empty folder deliveries`,
    );
  }
  return EXIT.ok;
}

const CLIENT_FLAGS: ParseArgsConfig['options'] = {
  server: { type: 'string' },
  'token-file': { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
};

async function clientCommand(command: string, args: string[]): Promise<number> {
  const own: Record<string, ParseArgsConfig['options']> = {
    send: { to: { type: 'string', multiple: true }, level: { type: 'string' }, subject: { type: 'string' }, 'message-file': { type: 'string' }, 'expires-days': { type: 'string' } },
    release: { 'all-pending': { type: 'boolean' }, 'accept-changed-keys': { type: 'boolean' }, 'secupass-file': { type: 'string' } },
    fetch: { out: { type: 'string', short: 'o' }, all: { type: 'boolean' }, overwrite: { type: 'boolean' }, 'secupass-file': { type: 'string' } },
    key: { gnupg: { type: 'boolean' }, out: { type: 'string', short: 'o' }, force: { type: 'boolean' }, 'secupass-file': { type: 'string' } },
    deliveries: { box: { type: 'string' }, state: { type: 'string' }, limit: { type: 'string' } },
    status: {},
  };
  if (args.some((a) => a === '--secupass' || a.startsWith('--secupass='))) {
    throw new UsageError('a SecuPass is never given as an argument (other users see arguments); use --secupass-file, $SEALDROP_SECUPASS_FILE, $SEALDROP_SECUPASS or the prompt');
  }
  if (args.some((a) => a === '--token' || a.startsWith('--token='))) throw new UsageError('a token is never given as an argument; use --token-file or $SEALDROP_TOKEN_FILE');
  const { values, positionals } = parse(args, { ...CLIENT_FLAGS, ...own[command] }, true);
  if (values.help) {
    console.log(HELP[command]);
    return EXIT.ok;
  }
  const run: ClientRun = {
    options: { server: values.server as string | undefined, tokenFile: values['token-file'] as string | undefined },
    json: Boolean(values.json),
    quiet: Boolean(values.quiet),
    secupassFile: values['secupass-file'] as string | undefined,
  };
  const int = (name: string, min: number, max: number): number | undefined => {
    const v = values[name];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
  switch (command) {
    case 'send': {
      if (positionals.length === 0) throw new UsageError('give at least one file');
      const to = ((values.to as string[] | undefined) ?? []).flatMap((t) => t.split(',')).map((t) => t.trim()).filter(Boolean);
      if (to.length === 0) throw new UsageError('--to is required (repeat it or separate addresses with commas)');
      return send(run, { files: positionals, to, level: int('level', 1, 4) ?? 3, subject: values.subject as string | undefined, messageFile: values['message-file'] as string | undefined, expiresInDays: int('expires-days', 1, 3650) });
    }
    case 'release':
      if (values['all-pending'] ? positionals.length > 0 : positionals.length === 0) throw new UsageError('give delivery ids or --all-pending (not both)');
      return release(run, positionals, { allPending: Boolean(values['all-pending']), acceptChangedKeys: Boolean(values['accept-changed-keys']) });
    case 'fetch':
      if (!values.out) throw new UsageError('--out DIR is required');
      return fetchDeliveries(run, positionals, { out: values.out as string, all: Boolean(values.all), overwrite: Boolean(values.overwrite) });
    case 'key':
      if (positionals[0] !== 'export' || positionals.length !== 1) throw new UsageError('the key command is "sealdrop key export [--gnupg]"');
      return keyExport(run, { gnupg: Boolean(values.gnupg), out: values.out as string | undefined, force: Boolean(values.force) });
    case 'deliveries': {
      const box = (values.box as string | undefined) ?? 'inbox';
      if (box !== 'inbox' && box !== 'outbox') throw new UsageError('--box must be inbox or outbox');
      return listDeliveries(run, { box, state: values.state as string | undefined, limit: int('limit', 1, 1000) });
    }
    case 'status':
      if (positionals.length !== 1) throw new UsageError('give one delivery id');
      return status(run, positionals[0] as string);
  }
  return EXIT.usage;
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
