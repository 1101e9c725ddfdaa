/**
 * The SFTP front-end (ssh2): host keys, password and public-key authentication against the
 * core, per-account session limits, and one SftpSession per SFTP channel. Tuned like OpenSSH:
 * TCP_NODELAY, the limits@openssh.com extension (patched into ssh2), AES-GCM and
 * chacha20-poly1305 offered, and `sftp.end()` when the client ends the channel.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Logger } from 'pino';
import ssh2, { type AuthContext, type Connection } from 'ssh2';
import type { Config } from '../../config/schema.ts';
import type { Principal } from '../../core/context.ts';
import { fail, isSealdropError } from '../../core/errors.ts';
import type { LiveLogin } from '../../core/accounts.ts';
import type { Core } from '../../core/index.ts';
import { loadGc, YoungGcPacer } from '../../util/gc.ts';
import { loadHostKeys, type HostKey } from './host-keys.ts';
import { SftpSession, type OpenFileBudget } from './session.ts';

/** Options of startSftpServer. */
export interface SftpOptions {
  core: Core;
  config: Config;
  hostKeyDir: string;
  log: Logger;
}

/** A running SFTP server. */
export interface SftpServer {
  port: number;
  hostKeys: HostKey[];
  /** Stops accepting; waits up to `timeoutMs` for sessions to finish, then ends them. */
  close(timeoutMs: number): Promise<void>;
}

/**
 * A young collection after each this many bytes of SFTP WRITE data (see util/gc.ts): ~500 per
 * GiB, each well under a millisecond with so little surviving. ssh2 leaves ~1.5 bytes of
 * short-lived buffers per byte uploaded since it reuses its WRITE assembly buffer (patch;
 * 2.5 before). Measured, three 1 GiB uploads per daemon, two daemons each, alternating: peaks
 * 123-127 MB with one per 2 MiB and with one per 1 MiB, main-thread CPU 1.70-1.85 s per GiB
 * against 1.79-2.13. (Before the reuse, one per 1 MiB gave peaks 133-136 MB against 136-138.)
 */
const YOUNG_GC_BYTES = 2 * 1024 * 1024;

/** Session channels one connection may have open at once. */
const MAX_CHANNELS = 10;
/** Failed log-in attempts after which a connection is closed (OpenSSH's MaxAuthTries). */
const MAX_AUTH_TRIES = 6;
/**
 * How often the accounts logged in over SFTP are checked: a disabled (or deleted) account's
 * connections are closed. Disabling happens in another process (the CLI) or instance.
 */
const ACCOUNT_CHECK_MS = 5000;

const CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'];

/** Starts the SFTP server on the configured address. */
export async function startSftpServer({ core, config, hostKeyDir, log }: SftpOptions): Promise<SftpServer> {
  const slog = log.child({ component: 'sftp' });
  const hostKeys = loadHostKeys(hostKeyDir, (k) => slog.info({ type: k.type, file: k.file, fingerprint: k.fingerprint }, 'generated SSH host key'));
  const clients = new Set<Connection>();
  const perAccount = new Map<string, number>();
  const cfg = config.sftp;
  /** Files open per account, over all its sessions (see sftp.maxOpenFilesPerAccount). */
  const openFiles = new Map<string, number>();
  const budgetOf = (accountId: string): OpenFileBudget => ({
    take() {
      const n = openFiles.get(accountId) ?? 0;
      if (n >= cfg.maxOpenFilesPerAccount) throw fail('SEALDROP_E_LIMIT', `at most ${cfg.maxOpenFilesPerAccount} files open at once per account`);
      openFiles.set(accountId, n + 1);
    },
    give() {
      const n = (openFiles.get(accountId) ?? 1) - 1;
      if (n <= 0) openFiles.delete(accountId);
      else openFiles.set(accountId, n);
    },
  });
  /** Logged-in connections, each with its login and what ends it once that login no longer holds. */
  const loggedIn = new Map<Connection, { login: LiveLogin; end: (why: string) => void }>();
  let checking = false;
  const accountCheck = setInterval(() => {
    if (loggedIn.size === 0 || checking) return;
    checking = true;
    const live = [...loggedIn.values()];
    core.accounts
      .endedLogins(live.map((l) => l.login))
      .then((ended) => {
        ended.forEach((gone, i) => {
          if (gone) live[i]?.end('the account is disabled, its password changed or its SSH key removed');
        });
      })
      .catch((err: unknown) => slog.warn({ err }, 'could not check the logged-in accounts'))
      .finally(() => (checking = false));
  }, ACCOUNT_CHECK_MS);
  accountCheck.unref();
  const gc = loadGc();
  if ('reason' in gc) slog.info({ reason: gc.reason }, 'young collections are not paced by upload bytes');
  const pacer = new YoungGcPacer('collector' in gc ? gc.collector : null, YOUNG_GC_BYTES);

  /** Sockets that have not logged in yet, each with what ends its start-up (logged in or gone). */
  const startups = new Map<Socket, () => void>();
  let refusedStarts = 0;

  const server = new ssh2.Server(
    {
      hostKeys: hostKeys.map((k) => k.privateKey),
      algorithms: { cipher: CIPHERS as never },
      ident: 'sealdrop',
    },
    (client, info) => {
      const id = randomUUID();
      const ip = info.ip;
      const clog = slog.child({ session: id, ip });
      clients.add(client);
      // Without TCP_NODELAY, Nagle delays the small status replies and uploads crawl.
      (client as unknown as { setNoDelay(v: boolean): void }).setNoDelay(true);
      // Batch what we send in answer to one read from the socket (window adjustments, statuses)
      // into one write: with NODELAY every small packet would otherwise be its own syscall.
      const batch = corker(client);
      const hold = holder(client);
      (client as unknown as { _sock?: Socket })._sock?.prependListener('data', batch);
      let principal: Principal | undefined;
      /** The SSH key of a key login. */
      let keyId: string | undefined;
      let counted = false;
      let opened: Promise<unknown> | undefined;
      let clean = false;
      let channelEnded = false;
      /** A client broke the SFTP protocol (a malformed packet): its session never ends cleanly. */
      let violated = false;
      /** Session channels open on this connection. */
      let channels = 0;
      /** The SFTP sessions of channels still open. */
      const sessions = new Set<SftpSession>();
      /** Uploads abandoned when their channel closed, and those abandonments. */
      let abortedUploads = 0;
      let abandoning: Promise<void> = Promise.resolve();
      const abandon = (s: SftpSession) => {
        sessions.delete(s);
        abandoning = abandoning
          .then(async () => {
            abortedUploads += await s.abandon();
          })
          .catch((err: unknown) => clog.error({ err }, 'closing the files of an SFTP channel failed'));
      };
      /** The account was disabled while logged in: the connection ends, never cleanly. */
      let revoked = false;

      /** Failed log-in attempts on this connection ("none" aside). */
      let failures = 0;
      const refuse = (ctx: AuthContext) => {
        ctx.reject(['password', 'publickey'], false);
        if (ctx.method !== 'none' && ++failures >= MAX_AUTH_TRIES) {
          clog.info({ failures }, 'too many failed log-in attempts on one connection');
          client.end();
        }
      };
      client.on('authentication', (ctx: AuthContext) => {
        authenticate(core, ctx, ip).then(
          (auth) => {
            if (!auth) return;
            const p = auth.principal;
            const n = perAccount.get(p.accountId) ?? 0;
            if (n >= cfg.maxSessionsPerAccount) {
              clog.warn({ account: p.email }, 'too many concurrent sessions for the account');
              ctx.reject(['password', 'publickey'], false);
              return;
            }
            principal = p;
            keyId = auth.keyId;
            ctx.accept();
          },
          (err: unknown) => {
            if (!isSealdropError(err)) clog.error({ err }, 'authentication failed with an error');
            refuse(ctx);
          },
        );
      });

      client.on('ready', () => {
        const sock = (client as unknown as { _sock?: Socket })._sock;
        if (sock) startups.get(sock)?.();
        const p = principal as Principal;
        perAccount.set(p.accountId, (perAccount.get(p.accountId) ?? 0) + 1);
        counted = true;
        loggedIn.set(client, {
          login: { accountId: p.accountId, auth: p.auth, since: new Date(), keyId },
          end: (why) => {
            if (revoked) return;
            revoked = true;
            clog.info({ account: p.email, why }, 'the login no longer holds: session closed');
          // Nothing more is served: its files are closed now, and the socket goes even if the
          // client ignores the DISCONNECT (ssh2's end() only half-closes the connection).
            for (const s of [...sessions]) abandon(s);
            hangUp(client);
          },
        });
        opened = core.tree.sessionOpened(p, id).catch((err: unknown) => clog.error({ err }, 'could not record the session'));
        clog.info({ account: p.email, auth: p.auth }, 'sftp session started');
        if (sock && cfg.idleTimeoutSeconds > 0) {
          sock.setTimeout(cfg.idleTimeoutSeconds * 1000, () => {
            clog.info('idle session closed');
            hangUp(client);
          });
        }
        client.on('session', (acceptSession, rejectSession) => {
          // Each channel is an SFTP session with its own state: at most MAX_CHANNELS at once
          // per connection (OpenSSH's MaxSessions default), or one connection could open any number.
          if (channels >= MAX_CHANNELS) {
            clog.info({ max: MAX_CHANNELS }, 'session channel refused: too many on this connection');
            rejectSession();
            return;
          }
          channels++;
          let live = true;
          const release = () => {
            if (live) channels--;
            live = false;
          };
          const session = acceptSession();
          // ssh2 reports a channel's close on the session until a subsystem starts, then on it.
          session.once('close', release);
          session.on('sftp', (acceptSftp) => {
            const sftp = acceptSftp();
            const s = new SftpSession(core, p, sftp, clog, batch, hold, pacer, budgetOf(p.accountId));
            sessions.add(s);
            // A closed channel's open files are released now, not when the connection ends: a
            // client could otherwise open and close channels and keep every file they held open.
            sftp.once('close', () => {
              release();
              abandon(s);
            });
            // ssh2 emits this for a malformed packet (a handle over 256 bytes, a truncated
            // request) and closes the channel itself. Without a listener the event would throw
            // inside ssh2's parser, which then drops the whole connection with its other channels.
            sftp.on('error', (err: Error) => {
              violated = true;
              clog.info({ error: err.message }, 'sftp protocol error: channel closed');
            });
            sftp.on('end', () => {
              channelEnded = true;
              sftp.end();
            });
          });
          session.on('exec', (_accept, reject) => reject());
          session.on('shell', (_accept, reject) => reject());
          session.on('pty', (_accept, reject) => reject?.());
        });
        client.on('tcpip', (_accept, reject) => reject());
        client.on('openssh.streamlocal', (_accept, reject) => reject());
      });

      client.on('end', () => {
        // The client closed the connection after ending its SFTP channel: a clean end.
        clean = channelEnded && !violated && !revoked;
      });
      client.on('error', (err: Error) => {
        clean = false;
        clog.info({ error: err.message }, 'connection error');
      });
      client.on('close', () => {
        clients.delete(client);
        const p = principal;
        if (!p || !counted) return;
        perAccount.set(p.accountId, (perAccount.get(p.accountId) ?? 1) - 1);
        if ((perAccount.get(p.accountId) ?? 0) <= 0) perAccount.delete(p.accountId);
        loggedIn.delete(client);
        void (async () => {
          for (const s of [...sessions]) abandon(s);
          await abandoning;
          await opened;
          const ended = clean && !revoked;
          await core.tree.sessionClosed(p, id, ended && abortedUploads === 0);
          clog.info({ account: p.email, clean: ended, abortedUploads }, 'sftp session ended');
        })().catch((err: unknown) => clog.error({ err }, 'ending the session failed'));
      });
    },
  );
  server.on('error', (err: Error) => slog.error({ err }, 'sftp server error'));

  // Connections are accepted here and handed to ssh2 (injectSocket), so that the time to log in
  // and the number of connections not logged in yet count from the TCP connection on: ssh2 only
  // reports a connection once the client sent its SSH version line, and one that never does would
  // hold its socket for good. Too many at once are closed at once, as OpenSSH's MaxStartups does.
  const tcp = net.createServer((socket) => {
    socket.on('error', () => undefined); // ssh2 reports the errors of the sockets it got
    if (startups.size >= cfg.maxUnauthenticated) {
      refusedStarts++;
      if (refusedStarts === 1 || refusedStarts % 1000 === 0) slog.warn({ max: cfg.maxUnauthenticated, refused: refusedStarts }, 'connection refused: too many connections not logged in yet');
      socket.destroy();
      return;
    }
    const timer = setTimeout(() => {
      slog.info({ ip: socket.remoteAddress }, 'authentication timed out');
      // Its place is free before the client can see the close ('close' comes a turn later, and
      // a client connecting again at once was refused as one too many).
      startups.delete(socket);
      socket.destroy();
    }, cfg.authTimeoutSeconds * 1000);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      startups.delete(socket);
    };
    startups.set(socket, done);
    socket.once('close', done);
    server.injectSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(cfg.port, cfg.host, () => {
      tcp.off('error', reject);
      tcp.on('error', (err: Error) => slog.error({ err }, 'sftp listener error'));
      resolve();
    });
  });
  const port = (tcp.address() as AddressInfo).port;
  for (const k of hostKeys) slog.info({ type: k.type, fingerprint: k.fingerprint }, 'SSH host key');
  return {
    port,
    hostKeys,
    async close(timeoutMs: number) {
      clearInterval(accountCheck);
      await new Promise<void>((resolve) => {
        tcp.close(() => resolve());
        for (const socket of startups.keys()) socket.destroy();
        const deadline = setTimeout(() => {
          for (const c of clients) c.end();
          resolve();
        }, timeoutMs);
        deadline.unref();
        if (clients.size === 0) resolve();
      });
      for (const c of clients) c.end();
    },
  };
}

/** Ends a connection (SSH DISCONNECT), and destroys its socket if it is still open a second later. */
function hangUp(client: Connection): void {
  client.end();
  const sock = (client as unknown as { _sock?: Socket })._sock;
  setTimeout(() => {
    if (sock && !sock.destroyed) sock.destroy();
  }, 1000).unref();
}

/**
 * A function that corks the connection's socket until the event loop's next check phase: the
 * replies due in one turn of the loop (several encrypted pieces may come back from the worker
 * at once) leave in one write.
 */
function corker(client: Connection): () => void {
  const sock = (client as unknown as { _sock?: Socket })._sock;
  let corked = false;
  return () => {
    if (!sock || corked) return;
    corked = true;
    sock.cork();
    setImmediate(() => {
      corked = false;
      sock.uncork();
    });
  };
}

/**
 * Back-pressure on the connection: reading pauses while any hold is pending (an upload's buffer
 * is full) and resumes when the last one settles.
 */
function holder(client: Connection): (until: Promise<unknown>) => void {
  const sock = (client as unknown as { _sock?: Socket })._sock;
  let holds = 0;
  return (until) => {
    if (!sock) return;
    if (holds++ === 0) sock.pause();
    const release = () => {
      if (--holds === 0 && !sock.destroyed) sock.resume();
    };
    until.then(release, release);
  };
}

/** Authenticates one attempt (with the SSH key of a key login); null means "answered already" (a key query accepted). */
async function authenticate(core: Core, ctx: AuthContext, ip: string): Promise<{ principal: Principal; keyId?: string } | null> {
  if (ctx.method === 'password') {
    const { principal } = await core.accounts.verifyCredentials({ email: ctx.username, password: ctx.password }, ip, 'sftp');
    return { principal };
  }
  if (ctx.method === 'publickey') {
    const found = await core.sshKeys.accountForKey(ctx.key.data);
    let username: string | undefined;
    try {
      username = ctx.username.trim().toLowerCase();
    } catch {
      username = undefined;
    }
    if (!found || found.account.email !== username) throw fail('SEALDROP_E_UNAUTHENTICATED', 'unknown key');
    const stored = ssh2.utils.parseKey(found.key.publicKey);
    if (stored instanceof Error) throw stored;
    const pub = Array.isArray(stored) ? stored[0] : stored;
    const blob = pub?.getPublicSSH();
    if (!pub || !blob || blob.length !== ctx.key.data.length || !timingSafeEqual(blob, ctx.key.data)) throw fail('SEALDROP_E_UNAUTHENTICATED', 'unknown key');
    if (!ctx.signature || !ctx.blob) {
      // The client asks whether this key would do; it signs next.
      ctx.accept();
      return null;
    }
    if (pub.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) throw fail('SEALDROP_E_UNAUTHENTICATED', 'bad signature');
    await core.sshKeys.touch(found.key.id);
    const principal = await core.accounts.principalFor(found.account.id, 'ssh_key', 'sftp', ip);
    if (!principal) throw fail('SEALDROP_E_UNAUTHENTICATED', 'the account is not active');
    return { principal, keyId: found.key.id };
  }
  // "none" (every client's first try), keyboard-interactive, hostbased: not offered.
  throw fail('SEALDROP_E_UNAUTHENTICATED', `authentication method ${ctx.method} is not offered`);
}
