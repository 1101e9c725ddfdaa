/**
 * One SFTP session: translates SFTP requests into calls on the core's virtual tree and core
 * errors into SFTP statuses. Writes must arrive in order (no resume); a WRITE is answered only
 * once its data is accepted by the upload stream, which is the back-pressure the client sees.
 * Reads stream a download forward; directories are listed once per handle.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import ssh2, { type Attributes, type FileEntry, type SFTPWrapper } from 'ssh2';
import type { Principal } from '../../core/context.ts';
import type { Download } from '../../core/deliveries.ts';
import { fail, isSealdropError } from '../../core/errors.ts';
import type { Core } from '../../core/index.ts';
import type { TreeEntry, TreeWrite } from '../../core/tree.ts';
import { recyclerOf, type Recycle } from '../../util/recycle.ts';
import type { YoungGcPacer } from '../../util/gc.ts';
import { sftpStatus } from './status.ts';

const { STATUS_CODE, OPEN_MODE } = ssh2.utils.sftp;

/** What the server advertises in limits@openssh.com (OpenSSH uses these sizes then). */
export const SFTP_LIMITS = {
  maxPacketLength: 256 * 1024,
  maxReadLength: 255 * 1024,
  maxWriteLength: 255 * 1024,
  maxOpenHandles: 64,
};


/** Replies ssh2 may hold for window space before the client counts as not taking them. */
const MAX_HELD_REPLIES = 1024;
const MAX_HELD_REPLY_BYTES = 4 * 1024 * 1024;
/** Up to this many held replies (OpenSSH keeps 64 requests outstanding) nothing is counted. */
const HELD_REPLIES_UNCHECKED = 64;
/**
 * Requests of one session not answered yet, at most: more is a client that does not wait for
 * its answers (READs behind a shut channel window each wait here, not in ssh2's buffer). A
 * client may share one session among many transfers (rclone puts a connection back in its pool
 * once a file is open): 64 requests outstanding on each of 64 files, and some room.
 */
const MAX_IN_FLIGHT = 64 * 64 + 256;

/** Open files an account may still have (shared by its sessions): take() throws SEALDROP_E_LIMIT. */
export interface OpenFileBudget {
  take(): void;
  give(): void;
}

const UNLIMITED: OpenFileBudget = { take: () => undefined, give: () => undefined };

type WriteHandle = { kind: 'write'; path: string; tw: TreeWrite; offset: number; chain: Promise<void>; failed: Error | null };
/**
 * A file open for reading. `pending` holds what was read and not yet sent, `origins` the chunk of
 * the download stream each pending piece is part of, `taken` the chunks whose last byte went into
 * the current reply. A download that lends its chunks (util/recycle.ts) gets each one back once
 * the reply that took its last byte has been handed to ssh2, which by then has copied it into SSH
 * packets or (the part beyond the channel window) into a buffer of its own (ssh2 patch).
 */
type ReadHandle = {
  kind: 'read';
  path: string;
  download: Download;
  position: number;
  pending: Buffer[];
  origins: Buffer[];
  pendingBytes: number;
  taken: Buffer[];
  giveBack: Recycle | undefined;
  iterator: AsyncIterator<Buffer>;
  done: boolean;
  chain: Promise<void>;
};
type DirHandle = { kind: 'dir'; path: string; entries: TreeEntry[]; sent: boolean };
type Handle = WriteHandle | ReadHandle | DirHandle;

function attrsOf(e: { kind: 'dir' | 'file'; size: number; mtime: Date; readonly: boolean }): Attributes {
  const time = Math.floor(e.mtime.getTime() / 1000);
  const mode = e.kind === 'dir' ? (e.readonly ? 0o040555 : 0o040755) : e.readonly ? 0o100444 : 0o100644;
  return { mode, uid: 0, gid: 0, size: e.size, atime: time, mtime: time };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function longname(e: TreeEntry): string {
  const perms = e.kind === 'dir' ? (e.readonly ? 'dr-xr-xr-x' : 'drwxr-xr-x') : e.readonly ? '-r--r--r--' : '-rw-r--r--';
  const d = e.mtime;
  const date = `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
  return `${perms}    1 sealdrop sealdrop ${String(e.size).padStart(12, ' ')} ${date} ${e.name}`;
}

/** Serves SFTP requests of one authenticated session. */
export class SftpSession {
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  private closed = false;
  /** Requests received and not answered yet. */
  private inFlight = 0;
  /** OPENs under way: their handles count against the limit before they exist. */
  private opening = 0;
  /** Set while ssh2 holds replies for channel window space; settles on its 'drain'. */
  private windowWait: Promise<void> | undefined;
  private windowOpen: () => void = () => undefined;

  constructor(
    private readonly core: Core,
    private readonly p: Principal,
    private readonly sftp: SFTPWrapper,
    private readonly log: Logger,
    /** Holds back socket writes until the end of this tick, so replies that become due together leave in one write. */
    private readonly batch: () => void = () => undefined,
    /** Stops reading the connection until `until` settles. */
    private readonly hold: (until: Promise<unknown>) => void = () => undefined,
    /** Paces young collections by the WRITE data taken (ssh2's buffers of it are garbage then). */
    private readonly pacer?: YoungGcPacer,
    /** The account's open files (shared with its other sessions). */
    private readonly files: OpenFileBudget = UNLIMITED,
  ) {
    const on = <A extends unknown[]>(event: string, fn: (reqid: number, ...args: A) => Promise<void>) => {
      sftp.on(event, (reqid: number, ...args: A) => {
        // Requests that still arrive on a closed channel are dropped unanswered.
        if (this.closed || this.repliesPiledUp()) return;
        if (this.inFlight >= MAX_IN_FLIGHT) {
          this.violated(`the client has more than ${MAX_IN_FLIGHT} requests waiting for an answer`);
          return;
        }
        this.inFlight++;
        fn.call(this, reqid, ...args)
          .catch((err: unknown) => this.fail(reqid, err))
          .finally(() => this.inFlight--);
      });
    };
    // The ssh2 patch then assembles each WRITE that arrives in pieces in one reused buffer
    // instead of a new ~256 KiB one; write() below keeps nothing of it once it returns.
    (sftp as unknown as { reuseWriteBuffer: boolean }).reuseWriteBuffer = true;
    on('OPEN', this.open);
    on('WRITE', this.write);
    on('READ', this.read);
    on('CLOSE', this.close);
    on('FSTAT', this.fstat);
    on('FSETSTAT', async (reqid: number) => this.ok(reqid));
    on('SETSTAT', async (reqid: number) => this.ok(reqid));
    on('STAT', this.stat);
    on('LSTAT', this.stat);
    on('OPENDIR', this.opendir);
    on('READDIR', this.readdir);
    on('REALPATH', this.realpath);
    on('MKDIR', async (reqid: number, path: string) => {
      await this.core.tree.mkdir(this.p, path);
      this.ok(reqid);
    });
    on('RMDIR', async (reqid: number, path: string) => {
      await this.core.tree.rmdir(this.p, path);
      this.ok(reqid);
    });
    on('REMOVE', async (reqid: number, path: string) => {
      await this.core.tree.remove(this.p, path);
      this.ok(reqid);
    });
    on('RENAME', async (reqid: number, from: string, to: string) => {
      await this.core.tree.rename(this.p, from, to, false);
      this.ok(reqid);
    });
    on('EXTENDED', this.extended);
    on('READLINK', async (reqid: number) => this.sftp.status(reqid, STATUS_CODE.OP_UNSUPPORTED, 'there are no links'));
    on('SYMLINK', async (reqid: number) => this.sftp.status(reqid, STATUS_CODE.OP_UNSUPPORTED, 'links cannot be made'));
  }

  /**
   * True, and the channel closed as an SFTP protocol error, when the client keeps sending
   * requests but does not take the replies: ssh2 holds every reply that finds the channel
   * window shut, without a bound (a client that never re-opened its window grew the daemon by
   * 220 MB in ten seconds of STAT requests). Pausing the socket would not do: the window
   * adjustment that lets the replies out arrives on it. A client that plays by the rules has at
   * most its outstanding requests' replies waiting (OpenSSH: 64), and READ replies wait here
   * rather than in ssh2 (`windowWait`).
   */
  private repliesPiledUp(): boolean {
    const held = (this.sftp as unknown as { _buffer?: Array<{ length: number }> })._buffer;
    if (!held || held.length <= HELD_REPLIES_UNCHECKED) return false;
    let bytes = 0;
    for (const r of held) bytes += r.length;
    if (held.length <= MAX_HELD_REPLIES && bytes <= MAX_HELD_REPLY_BYTES) return false;
    this.violated(`the client does not take its replies (${held.length} replies, ${bytes} bytes waiting for window space)`);
    return true;
  }

  /** Closes the channel as an SFTP protocol error (the connection's server logs it). */
  private violated(why: string): void {
    this.sftp.emit('error', new Error(why));
    this.sftp.destroy();
    // Its files are closed now, not when the client answers the channel's close (it may never).
    void this.abandon();
  }

  private ok(reqid: number): void {
    if (this.closed) return;
    this.batch();
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  private fail(reqid: number, err: unknown): void {
    if (this.closed) {
      // The session ended under the request (its streams were closed): nobody waits for it.
      // Anything else than the end of its streams is still worth an error line.
      const ended = isSealdropError(err) || ['ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ABORT_ERR'].includes((err as { code?: string } | undefined)?.code ?? '');
      if (ended) this.log.debug({ error: (err as Error | undefined)?.message }, 'sftp request ended with its session');
      else this.log.error({ err, code: 'SEALDROP_E_INTERNAL' }, 'sftp request failed after its session ended');
      return;
    }
    if (!isSealdropError(err)) this.log.error({ err, code: 'SEALDROP_E_INTERNAL' }, 'sftp request failed');
    else this.log.info({ code: err.code, error: err.message }, 'sftp request refused');
    const { code, message } = sftpStatus(err);
    this.sftp.status(reqid, code, message);
  }

  private handleOf(buf: Buffer): Handle {
    const h = buf.length === 4 ? this.handles.get(buf.readUInt32BE(0)) : undefined;
    if (!h) throw fail('SEALDROP_E_VALIDATION', 'invalid handle');
    return h;
  }

  /** Throws unless another handle may be opened in this session (checked before opening anything). */
  private roomForHandle(): void {
    if (this.handles.size + this.opening >= SFTP_LIMITS.maxOpenHandles) throw fail('SEALDROP_E_LIMIT', `at most ${SFTP_LIMITS.maxOpenHandles} open files per session`);
  }

  /** Registers a handle (its room was checked with roomForHandle before anything was opened). */
  private newHandle(h: Handle): Buffer {
    const id = this.nextHandle++;
    this.handles.set(id, h);
    const buf = Buffer.alloc(4);
    buf.writeUInt32BE(id, 0);
    return buf;
  }

  /**
   * OPEN. The handle limits are checked before the file is opened (an upload or download opened
   * and then refused a handle would stay open with no way to close it), and the file counts
   * against the account's open files until it is closed or the session ends.
   */
  private async open(reqid: number, path: string, flags: number): Promise<void> {
    this.roomForHandle();
    this.files.take();
    this.opening++;
    let handle: Buffer;
    try {
      handle = await this.openFile(path, flags);
    } catch (err) {
      this.files.give();
      throw err;
    } finally {
      this.opening--;
    }
    if (this.closed) return; // abandon() has released it with the session's other handles
    this.sftp.handle(reqid, handle);
  }

  private async openFile(path: string, flags: number): Promise<Buffer> {
    const writing = (flags & OPEN_MODE.WRITE) !== 0;
    if (!writing) {
      const download = await this.core.tree.openRead(this.p, path);
      const stream = download.stream as Readable;
      const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      const handle: ReadHandle = { kind: 'read', path, download, position: 0, pending: [], origins: [], pendingBytes: 0, taken: [], giveBack: recyclerOf(stream), iterator, done: false, chain: Promise.resolve() };
      if (this.closed) {
        stream.destroy();
        throw fail('SEALDROP_E_ABORTED', 'the session ended');
      }
      return this.newHandle(handle);
    }
    if ((flags & OPEN_MODE.READ) !== 0) throw fail('SEALDROP_E_VALIDATION', 'files are opened either for reading or for writing');
    const append = (flags & OPEN_MODE.APPEND) !== 0 || (flags & OPEN_MODE.TRUNC) === 0 && (await this.exists(path));
    const tw = await this.core.tree.openWrite(this.p, path, { append, exclusive: (flags & OPEN_MODE.EXCL) !== 0 });
    const handle: WriteHandle = { kind: 'write', path, tw, offset: 0, chain: Promise.resolve(), failed: null };
    if (this.closed) {
      await this.abortWrite(handle);
      throw fail('SEALDROP_E_ABORTED', 'the session ended');
    }
    return this.newHandle(handle);
  }

  private async exists(path: string): Promise<boolean> {
    try {
      await this.core.tree.stat(this.p, path);
      return true;
    } catch (err) {
      if (isSealdropError(err, 'SEALDROP_E_NOT_FOUND')) return false;
      throw err;
    }
  }

  /**
   * WRITE. The data is taken (copied by the upload) before anything waits, and only the
   * continuation waits: an async handler would keep its arguments, views of the ~256 KiB packet
   * ssh2 assembled, until the client's write is acknowledged. OpenSSH keeps 64 WRITEs
   * outstanding, so that held up to 16 MB, long enough to outlive the young collections. And
   * ssh2 (reuseWriteBuffer) overwrites that packet with the next WRITE.
   */
  private write(reqid: number, hbuf: Buffer, offset: number, data: Buffer): Promise<void> {
    let h: WriteHandle;
    let accepted: Promise<void>;
    try {
      const handle = this.handleOf(hbuf);
      if (handle.kind !== 'write') throw fail('SEALDROP_E_VALIDATION', 'the file is not open for writing');
      h = handle;
      if (h.failed) throw h.failed;
      if (offset !== h.offset) {
        const failed = fail('SEALDROP_E_WRONG_STATE', `writes must be in order from the start (expected offset ${h.offset}, got ${offset}); resuming is not supported`);
        h.failed = failed;
        return this.abortWrite(h).then(() => Promise.reject(failed));
      }
      h.offset += data.length;
      if (h.tw.kind === 'trigger') {
        h.tw.bytes += data.length;
        this.ok(reqid);
        return Promise.resolve();
      }
      // Answer once the upload buffer has room again: the client's window of outstanding writes
      // and this buffer bound the memory, while the pipeline keeps running.
      // `data` is a view of ssh2's reused packet buffer: an upload that keeps what it is
      // given (no staging: levels 1 and 2) gets a copy.
      const upload = h.tw.upload;
      accepted = upload.write(upload.copiesInput ? data : Buffer.from(data));
      this.pacer?.note(data.length);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.acknowledge(reqid, h, h.tw.upload, accepted);
  }

  /** Answers a WRITE once its data is accepted, in the order the writes came. */
  private async acknowledge(reqid: number, h: WriteHandle, upload: Extract<TreeWrite, { kind: 'upload' }>['upload'], accepted: Promise<void>): Promise<void> {
    accepted.catch(() => undefined);
    // Above its share of the upload buffer budget (4 MiB alone; at 1 MiB 8 parallel uploads ran
    // ~10% slower) the session stops reading the connection until the buffer is back at it.
    // ssh2 re-opens the channel window as soon as data arrives, so without this the client's
    // outstanding WRITEs (OpenSSH: 64 × 255 KiB) would all be held in memory; paused, they wait
    // in the kernel's socket buffer instead.
    const hold = upload.holdBytes;
    if (upload.buffered > hold) this.hold(upload.room(hold));
    h.chain = h.chain.then(() => accepted);
    await h.chain.catch((err: unknown) => {
      h.failed ??= isSealdropError(err) ? err : fail('SEALDROP_E_ABORTED', 'the upload failed');
      throw h.failed;
    });
    this.ok(reqid);
  }

  private async read(reqid: number, hbuf: Buffer, offset: number, length: number): Promise<void> {
    const h = this.handleOf(hbuf);
    if (h.kind !== 'read') throw fail('SEALDROP_E_VALIDATION', 'the file is not open for reading');
    const run = h.chain.then(async () => {
      if (this.closed) return;
      if (h.download.size !== undefined && offset >= h.download.size) {
        this.sftp.status(reqid, STATUS_CODE.EOF);
        return;
      }
      if (offset < h.position) throw fail('SEALDROP_E_WRONG_STATE', 'reading backwards is not supported; read the file from the start');
      await this.skipTo(h, offset);
      await this.fill(h, Math.min(length, SFTP_LIMITS.maxReadLength));
      // Replies wait while ssh2 holds earlier ones for channel window space: they would only
      // queue up there (copied, up to the client's 64 outstanding READs of 255 KiB).
      while (this.windowWait) await this.windowWait;
      if (this.closed) return;
      if (h.pendingBytes === 0) {
        if (!this.closed) this.sftp.status(reqid, STATUS_CODE.EOF);
        return;
      }
      const chunk = this.take(h, Math.min(length, SFTP_LIMITS.maxReadLength));
      h.position += chunk.length;
      this.batch(); // the reply's SSH packets (and replies due together) leave in one write
      // The ssh2 patch returns true (all sent) or false (the rest waits for window space, copied;
      // 'drain' follows); unpatched ssh2 returns nothing and may still hold `chunk`.
      const sent: unknown = this.sftp.data(reqid, chunk);
      if (sent === false && !this.windowWait) {
        this.windowWait = new Promise<void>((resolve) => (this.windowOpen = resolve)).finally(() => (this.windowWait = undefined));
        this.sftp.once('drain', () => this.windowOpen());
      }
      if (typeof sent === 'boolean' && h.giveBack) for (const c of h.taken) h.giveBack(c);
      h.taken.length = 0;
    });
    h.chain = run.catch(() => undefined);
    await run;
  }

  /**
   * Reads forward to `offset`, dropping what lies before it as it comes (a READ far ahead must
   * not collect the whole file in memory); stops early at the end of the file.
   */
  private async skipTo(h: ReadHandle, offset: number): Promise<void> {
    while (h.position < offset) {
      if (h.pendingBytes === 0) {
        await this.fill(h, 1);
        if (h.pendingBytes === 0) return;
      }
      const n = Math.min(offset - h.position, h.pendingBytes);
      this.take(h, n, false);
      h.position += n;
      // Chunks dropped whole go back to the download's pool at once: no reply holds them.
      if (h.giveBack) for (const c of h.taken) h.giveBack(c);
      h.taken.length = 0;
    }
  }

  private async fill(h: ReadHandle, want: number): Promise<void> {
    while (h.pendingBytes < want && !h.done) {
      const next = await h.iterator.next();
      if (next.done) h.done = true;
      else {
        h.pending.push(next.value);
        h.origins.push(next.value);
        h.pendingBytes += next.value.length;
      }
    }
  }

  /** Takes `n` pending bytes: returns them as one buffer, or with `keep` false only drops them. */
  private take(h: ReadHandle, n: number, keep = true): Buffer {
    const out: Buffer[] = [];
    let left = Math.min(n, h.pendingBytes);
    while (left > 0) {
      const head = h.pending[0] as Buffer;
      if (head.length <= left) {
        if (keep) out.push(head);
        h.pending.shift();
        h.taken.push(h.origins.shift() as Buffer);
        left -= head.length;
        h.pendingBytes -= head.length;
      } else {
        if (keep) out.push(head.subarray(0, left));
        h.pending[0] = head.subarray(left);
        h.pendingBytes -= left;
        left = 0;
      }
    }
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }

  private async close(reqid: number, hbuf: Buffer): Promise<void> {
    const h = this.handleOf(hbuf);
    this.handles.delete(hbuf.readUInt32BE(0));
    try {
      if (h.kind === 'write') {
        await h.chain.catch(() => undefined);
        if (h.failed) {
          await this.abortWrite(h);
          throw h.failed;
        }
        await this.core.tree.closeWrite(this.p, h.tw);
      } else if (h.kind === 'read') {
        await h.iterator.return?.();
        (h.download.stream as Readable).destroy();
      }
    } finally {
      if (h.kind !== 'dir') this.files.give();
    }
    this.ok(reqid);
  }

  private async abortWrite(h: WriteHandle): Promise<void> {
    await this.core.tree.abortWrite(this.p, h.tw).catch((err: unknown) => this.log.warn({ err }, 'abort of an upload failed'));
  }

  private async fstat(reqid: number, hbuf: Buffer): Promise<void> {
    const h = this.handleOf(hbuf);
    const now = new Date();
    if (h.kind === 'write') this.sftp.attrs(reqid, attrsOf({ kind: 'file', size: h.offset, mtime: now, readonly: false }));
    else if (h.kind === 'read') this.sftp.attrs(reqid, attrsOf({ kind: 'file', size: h.download.size ?? 0, mtime: now, readonly: true }));
    else this.sftp.attrs(reqid, attrsOf({ kind: 'dir', size: 0, mtime: now, readonly: false }));
  }

  private async stat(reqid: number, path: string): Promise<void> {
    this.sftp.attrs(reqid, attrsOf(await this.core.tree.stat(this.p, path)));
  }

  private async opendir(reqid: number, path: string): Promise<void> {
    this.roomForHandle();
    const entries = await this.core.tree.list(this.p, path);
    this.roomForHandle();
    this.sftp.handle(reqid, this.newHandle({ kind: 'dir', path, entries, sent: false }));
  }

  private async readdir(reqid: number, hbuf: Buffer): Promise<void> {
    const h = this.handleOf(hbuf);
    if (h.kind !== 'dir') throw fail('SEALDROP_E_VALIDATION', 'not a directory handle');
    if (h.sent) {
      this.sftp.status(reqid, STATUS_CODE.EOF);
      return;
    }
    h.sent = true;
    const now = new Date();
    const names: FileEntry[] = [
      { filename: '.', longname: longname({ name: '.', kind: 'dir', size: 0, mtime: now, readonly: false }), attrs: attrsOf({ kind: 'dir', size: 0, mtime: now, readonly: false }) },
      { filename: '..', longname: longname({ name: '..', kind: 'dir', size: 0, mtime: now, readonly: false }), attrs: attrsOf({ kind: 'dir', size: 0, mtime: now, readonly: false }) },
      ...h.entries.map((e) => ({ filename: e.name, longname: longname(e), attrs: attrsOf(e) })),
    ];
    this.sftp.name(reqid, names);
  }

  private async realpath(reqid: number, path: string): Promise<void> {
    const canonical = this.core.tree.canonical(path || '/');
    this.sftp.name(reqid, [{ filename: canonical, longname: canonical, attrs: {} as Attributes }]);
  }

  private async extended(reqid: number, name: string, data: Buffer | undefined): Promise<void> {
    if (name === 'limits@openssh.com') {
      const buf = Buffer.alloc(32);
      buf.writeBigUInt64BE(BigInt(SFTP_LIMITS.maxPacketLength), 0);
      buf.writeBigUInt64BE(BigInt(SFTP_LIMITS.maxReadLength), 8);
      buf.writeBigUInt64BE(BigInt(SFTP_LIMITS.maxWriteLength), 16);
      buf.writeBigUInt64BE(BigInt(SFTP_LIMITS.maxOpenHandles), 24);
      (this.sftp as unknown as { extendedReply(reqid: number, data: Buffer): void }).extendedReply(reqid, buf);
      return;
    }
    if (name === 'posix-rename@openssh.com' && data) {
      const [from, to] = readStrings(data, 2);
      await this.core.tree.rename(this.p, from as string, to as string, true);
      this.ok(reqid);
      return;
    }
    this.sftp.status(reqid, STATUS_CODE.OP_UNSUPPORTED, `${name} is not supported`);
  }

  /**
   * Abandons every open upload and closes every download (the channel or the connection ended;
   * a second call finds nothing); returns how many uploads there were.
   */
  async abandon(): Promise<number> {
    this.closed = true;
    this.windowOpen();
    let n = 0;
    const handles = [...this.handles.values()];
    this.handles.clear();
    for (const h of handles) {
      if (h.kind === 'write') {
        n++;
        await this.abortWrite(h);
      } else if (h.kind === 'read') (h.download.stream as Readable).destroy();
      if (h.kind !== 'dir') this.files.give();
    }
    return n;
  }
}

function readStrings(buf: Buffer, n: number): string[] {
  const out: string[] = [];
  let p = 0;
  for (let i = 0; i < n; i++) {
    if (p + 4 > buf.length) throw fail('SEALDROP_E_VALIDATION', 'malformed extended request');
    const len = buf.readUInt32BE(p);
    if (p + 4 + len > buf.length) throw fail('SEALDROP_E_VALIDATION', 'malformed extended request');
    out.push(buf.toString('utf8', p + 4, p + 4 + len));
    p += 4 + len;
  }
  return out;
}
