/**
 * The sealdrop configuration schema: one section per subsystem, every key with a default so
 * that the daemon starts with no config file at all. Values may come from YAML (typed) or from
 * environment variables (strings), so numbers, booleans and lists accept their string forms.
 */
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';

const fromString = (parse: (s: string) => unknown) => (v: unknown) => {
  if (typeof v !== 'string') return v;
  const s = v.trim();
  return s === '' ? v : parse(s);
};

/** An integer that also accepts its decimal string form (environment overrides). */
const int = (min: number, max: number) =>
  z.preprocess(fromString((s) => (/^-?\d+$/.test(s) ? Number(s) : s)), z.number().int().min(min).max(max));

/** A boolean that also accepts true/false/1/0/yes/no. */
const bool = () =>
  z.preprocess(
    fromString((s) => {
      const l = s.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(l)) return true;
      if (['false', '0', 'no', 'off'].includes(l)) return false;
      return s;
    }),
    z.boolean(),
  );

/** A list that also accepts a YAML/JSON flow sequence or a comma-separated string. */
const list = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    fromString((s) => (s.startsWith('[') ? parseYaml(s) : s.split(',').map((x) => x.trim()).filter(Boolean))),
    z.array(item),
  );

/** Whether `s` is a `postgres://` (or `postgresql://`) URL naming a host and a database. */
/** PostgreSQL TLS modes (libpq's sslmode names; `prefer` and `allow` are not offered: TLS is on or off). */
export const TLS_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;

function isPostgresUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'postgres:' || u.protocol === 'postgresql:') && u.hostname !== '' && u.pathname.length > 1;
  } catch {
    return false;
  }
}

const email = () => z.string().trim().toLowerCase().pipe(z.email({ message: 'must be an e-mail address' }));

const dropFolder = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_" or "-", not starting with a symbol')
    .refine((n) => !['outbox', 'inbox'].includes(n.toLowerCase()), 'is reserved (outbox, inbox)'),
  owner: email(),
  recipients: list(email()).refine((r) => r.length > 0, 'needs at least one recipient'),
  level: int(1, 4),
  subject: z.string().min(1).max(200).default('{folder} {date}'),
  expiresInDays: int(1, 3650).optional(),
  writers: list(email()).default([]),
});

/** Configuration of one drop folder (a configured upload target with fixed owner and recipients). */
export type DropFolderConfig = z.infer<typeof dropFolder>;

const argon2Params = z.strictObject({
  passes: int(1, 64).default(3),
  parallelism: int(1, 64).default(4),
  memoryExponent: int(10, 22).default(16),
});

/** The whole configuration schema. */
export const configSchema = z.strictObject({
  server: z
    .strictObject({
      /** Base URL used in links in e-mails. */
      publicBaseUrl: z.url().default('http://127.0.0.1:8080'),
      /** Seconds to wait for running transfers on shutdown. */
      shutdownTimeoutSeconds: int(0, 3600).default(30),
      /**
       * Seconds between checks of the memory that malloc holds freed (buffers of finished
       * transfers); from 8 MiB on it is given back to the system. 0 turns the checks off.
       */
      memoryTrimSeconds: int(0, 3600).default(5),
      /**
       * Bytes of buffer memory shared by all uploads in progress (plaintext waiting for
       * encryption): each gets this divided by the number running, at most 4 MiB and at least
       * 512 KiB. Bounds the daemon's memory however many clients upload at once.
       */
      uploadBufferBytes: int(4 * 1024 * 1024, 4 * 1024 * 1024 * 1024).default(32 * 1024 * 1024),
    })
    .prefault({}),
  http: z
    .strictObject({
      enabled: bool().default(true),
      host: z.string().min(1).default('127.0.0.1'),
      port: int(0, 65535).default(8080),
      maxJsonBytes: int(1024, 16 * 1024 * 1024).default(1024 * 1024),
      trustProxy: bool().default(false),
      /** TLS for HTTP and WebDAV: PEM certificate chain and key files (both or neither); SIGHUP reloads them. */
      tls: z
        .strictObject({
          certFile: z.string().min(1).optional(),
          keyFile: z.string().min(1).optional(),
        })
        .prefault({})
        .refine((t) => !t.certFile === !t.keyFile, 'certFile and keyFile go together'),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      /** Prometheus /metrics on its own listener (loopback by default; never on the public one). */
      enabled: bool().default(true),
      host: z.string().min(1).default('127.0.0.1'),
      port: int(0, 65535).default(9464),
    })
    .prefault({}),
  storage: z
    .strictObject({
      dataDir: z.string().min(1).default('./data'),
      /** Defaults to `<dataDir>/blobs`. */
      blobDir: z.string().min(1).optional(),
      /**
       * Seconds after which an untouched temporary blob, an unreferenced blob or an empty open
       * folder delivery counts as left over by a crashed upload and is removed. It must exceed
       * the longest pause a running upload may make (uploads write continuously; SFTP sessions
       * idle out after sftp.idleTimeoutSeconds). With SQLite the start-up recovery removes
       * leftovers at once (one process); other instances on a shared store are spared by it.
       */
      orphanGraceSeconds: int(1, 7 * 86_400).default(3900),
      /**
       * Write and read blobs past the page cache (O_DIRECT) where the filesystem allows it
       * (probed at start). Off by default: through the page cache, fdatasync every 32 MiB.
       */
      directWrites: bool().default(false),
    })
    .prefault({}),
  database: z
    .strictObject({
      /** `sqlite` (embedded, one instance) or `postgresql` (a server; several instances may share it). */
      driver: z.enum(['sqlite', 'postgresql']).default('sqlite'),
      /** Defaults to `<dataDir>/sealdrop.db`. */
      sqlitePath: z.string().min(1).optional(),
      /** PostgreSQL: `postgres://user@host:port/database` (required with driver postgresql). */
      url: z.string().trim().refine(isPostgresUrl, 'must be a postgres://user@host:port/database URL').optional(),
      /** PostgreSQL: the password (a secret; wins over one inside the URL). */
      password: z.string().optional(),
      /** PostgreSQL: most connections this process opens. */
      poolMax: int(1, 1000).default(10),
      /**
       * PostgreSQL: TLS to the server, as libpq's sslmode: `disable` (the default), `require`
       * (encrypted, the certificate not checked), `verify-ca` (signed by `caFile`, or by the
       * system's CAs without it), `verify-full` (that, and issued to the URL's host). The URL's
       * `sslmode` and `sslrootcert` parameters say the same.
       */
      tls: z
        .strictObject({
          mode: z.enum(TLS_MODES).optional(),
          caFile: z.string().min(1).optional(),
        })
        .prefault({}),
      /** Apply pending migrations at start-up (`sealdrop migrate` does it explicitly). */
      autoMigrate: bool().default(true),
    })
    .prefault({}),
  mail: z
    .strictObject({
      transport: z.enum(['file', 'smtp']).default('file'),
      /** Defaults to `<dataDir>/mail` (file transport). */
      fileDir: z.string().min(1).optional(),
      from: z.string().min(3).default('sealdrop <sealdrop@localhost>'),
      smtp: z
        .strictObject({
          host: z.string().min(1).default('127.0.0.1'),
          port: int(1, 65535).default(25),
          secure: bool().default(false),
          requireTLS: bool().default(false),
          ignoreTLS: bool().default(false),
          user: z.string().optional(),
          password: z.string().optional(),
        })
        .prefault({}),
      pollIntervalMs: int(50, 600_000).default(1000),
      maxAttempts: int(1, 100).default(12),
      retryBaseMs: int(10, 3_600_000).default(2000),
      retryMaxMs: int(10, 86_400_000).default(3_600_000),
      /**
       * Seconds an instance holds a claimed outbox mail; a mail claimed by an instance that died
       * is sent by another after this (renewed before each send, so a slow batch keeps its rows).
       */
      claimSeconds: int(5, 3600).default(120),
      /** Days to keep sent mails of the file transport (0: keep forever); removed by the retention job. */
      fileRetentionDays: int(0, 3650).default(30),
    })
    .prefault({}),
  crypto: z
    .strictObject({
      /** Key-encryption key for levels 1/2 and the mail outbox; keep it outside the data folder. */
      kekFile: z.string().min(1).default('./secrets/sealdrop.kek'),
      /** Argon2 S2K settings protecting private keys (server-side key generation). */
      s2kArgon2: argon2Params.prefault({}),
      /** Allow the convenience routes that send a SecuPass to the server. */
      serverSideSecupass: bool().default(true),
      /** Worker threads encrypting uploads (-1: one less than the CPUs, at least one; 0: on the main thread). */
      encryptionThreads: int(-1, 64).default(-1),
    })
    .prefault({}),
  accounts: z
    .strictObject({
      passwordMinLength: int(8, 1024).default(12),
      secupassMinLength: int(8, 1024).default(12),
      /** argon2id parameters for login passwords (memory in KiB). */
      passwordHash: z
        .strictObject({
          memoryCost: int(8, 4 * 1024 * 1024).default(19456),
          timeCost: int(1, 100).default(2),
          parallelism: int(1, 16).default(1),
        })
        .prefault({}),
      invitationTtlHours: int(1, 24 * 90).default(24 * 14),
      passwordResetTtlMinutes: int(5, 24 * 60).default(60),
      sessionTtlMinutes: int(5, 24 * 60 * 30).default(8 * 60),
      apiTokenMaxDays: int(1, 3650).default(365),
      loginMaxFailures: int(1, 1000).default(10),
      loginWindowSeconds: int(10, 86_400).default(900),
      /** Server-side releases (SecuPass sent to the server) per account and window. */
      releaseMaxAttempts: int(1, 1000).default(10),
      releaseWindowSeconds: int(10, 86_400).default(900),
    })
    .prefault({}),
  deliveries: z
    .strictObject({
      defaultExpiryDays: int(1, 3650).default(90),
      maxExpiryDays: int(1, 3650).default(365),
      maxFileBytes: int(0, Number.MAX_SAFE_INTEGER).default(20 * 1024 * 1024 * 1024),
      maxFilesPerDelivery: int(1, 100_000).default(1000),
      /** Unsent (open) deliveries one sender may have at once. */
      maxOpenPerSender: int(1, 1_000_000).default(1000),
      maxRecipients: int(1, 1000).default(50),
      maxSubjectLength: int(1, 1000).default(200),
      maxMessageBytes: int(0, 10 * 1024 * 1024).default(64 * 1024),
      /** Seconds between retention runs (expired deliveries, expired tokens, old mail files). */
      expirySweepSeconds: int(1, 86_400).default(300),
    })
    .prefault({}),
  sftp: z
    .strictObject({
      enabled: bool().default(true),
      host: z.string().min(1).default('127.0.0.1'),
      port: int(0, 65535).default(2222),
      /** Host keys (ed25519 and RSA) are generated here on first start; default `<dataDir>/host-keys`. */
      hostKeyDir: z.string().min(1).optional(),
      /** Concurrent SFTP sessions per account. */
      maxSessionsPerAccount: int(1, 1000).default(8),
      /** Files (uploads and downloads) open at once per account, over all its SFTP sessions. */
      maxOpenFilesPerAccount: int(1, 100_000).default(256),
      /** Seconds a connection may take to authenticate. */
      authTimeoutSeconds: int(1, 600).default(30),
      /** Connections not authenticated yet, at most (more are closed at once: OpenSSH's MaxStartups). */
      maxUnauthenticated: int(1, 100_000).default(100),
      /** Seconds without traffic before an idle session is closed (0: never). */
      idleTimeoutSeconds: int(0, 86_400).default(3600),
    })
    .prefault({}),
  webdav: z
    .strictObject({
      /** Serve WebDAV at /dav/ on the HTTP listener. */
      enabled: bool().default(true),
      /**
       * Allow HTTP Basic (password or API token) on a listener that is neither loopback nor
       * behind TLS. Off: such requests are refused, so passwords never cross a network in clear.
       */
      allowBasicWithoutTls: bool().default(false),
      /**
       * Seconds after an upload during which the sender's client may read its own unsent level
       * 3/4 file back (Finder and Office do). 0: never; the session key is then not kept.
       */
      readBackSeconds: int(0, 86_400).default(900),
      /** Longest lock a client may take, in seconds (a longer or infinite request gets this). */
      maxLockSeconds: int(1, 7 * 86_400).default(3600),
      /** Largest XML request body (PROPFIND, PROPPATCH, LOCK) in bytes. */
      maxXmlBytes: int(1024, 10 * 1024 * 1024).default(256 * 1024),
    })
    .prefault({}),
  tree: z
    .strictObject({
      /** Security level of deliveries made in `/outbox/<email>/` (SFTP, WebDAV). */
      outboxLevel: int(1, 4).default(3),
      /** Subject of outbox deliveries without a subfolder; {sender}, {recipient}, {date}, {time}. */
      outboxSubject: z.string().min(1).max(200).default('Files from {sender}'),
      /** Writing a file of this name into a folder sends the folder's open delivery. */
      triggerName: z.string().min(1).max(255).default('.ready'),
      /** Send an open folder delivery after this many seconds without activity (0: off). */
      idleSendSeconds: int(0, 30 * 86_400).default(0),
      /** Send a folder's open delivery when the account's last session ends cleanly. */
      sendOnSessionEnd: bool().default(true),
    })
    .prefault({}),
  dropFolders: list(dropFolder).default([]),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
});

/** The validated configuration, with every default filled in. */
export type Config = z.infer<typeof configSchema>;

/** Dotted paths of keys whose values are secrets (redacted in dumps, may come from `_FILE`). */
export const SECRET_KEYS = ['mail.smtp.password', 'database.password'] as const;
