/**
 * TreeService: the one virtual file tree that SFTP (and WebDAV) adapt. It maps paths to the
 * delivery process:
 *
 *   /outbox/<email>/            a member's open delivery to that address (virtual folder)
 *   /outbox/<email>/<subject>/  a separate open delivery with that subject (mkdir makes it)
 *   /<drop-folder>/             the caller's open delivery into a configured drop folder
 *   /inbox/<delivery>/<file>    read-only: deliveries available to the caller (.pgp at level 3/4)
 *
 * Grouping and completion rules live here, not in the protocols: temporary names are stored
 * but never delivered, a rename to the final name completes a file, the trigger file sends a
 * folder, the account's last clean session end sends what its sessions touched, and an idle
 * sweep sends folders that stopped changing.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path/posix';
import { Readable } from 'node:stream';
import {
  DaemonInstanceSchema,
  DeliveryFileSchema,
  DeliveryRecipientSchema,
  DeliverySchema,
  FolderActivitySchema,
  KeyWrapSchema,
  ProtocolSessionSchema,
  SecuPassKeySchema,
  type Delivery,
  type DeliveryFile,
} from '../store/entities.ts';
import { audit } from './audit.ts';
import { actorOf, inTx, readEm, type CoreDeps, type Principal, type Via } from './context.ts';
import { renderSubject, type DeliveryService, type DeliverySpec, type Download } from './deliveries.ts';
import { fail, isSealdropError } from './errors.ts';
import type { Upload } from './uploads.ts';
import { displayName, normalizeEmail, validateFileName, validateRelativePath, validateSubject } from './validation.ts';

/** A directory entry or stat result. */
export interface TreeEntry {
  name: string;
  kind: 'dir' | 'file';
  /** Plaintext size for the caller's own files; the downloadable size in /inbox. */
  size: number;
  mtime: Date;
  /** True where the caller cannot write (inbox, root). */
  readonly: boolean;
  /** A file's id: it changes whenever the file is written (entity tags). */
  id?: string;
}

/** A writable tree folder: where its files go. */
interface Folder {
  key: string;
  /** The path shown to the client. */
  path: string;
  spec(): Promise<DeliverySpec & { folderKey: string }>;
}

type Node =
  | { t: 'root' }
  | { t: 'inbox' }
  | { t: 'outbox' }
  /** A delivery's folder in /inbox, or (`prefix` not empty) a folder inside it. */
  | { t: 'inboxDelivery'; delivery: Delivery; name: string; prefix: string }
  | { t: 'inboxFile'; delivery: Delivery; file: DeliveryFile; name: string }
  | { t: 'folder'; folder: Folder; virtual: boolean }
  | { t: 'folderFile'; folder: Folder; delivery: Delivery; file: DeliveryFile }
  | { t: 'folderDir'; folder: Folder; delivery: Delivery; rel: string }
  /** The trigger file just after it sent its folder: shown as an empty file for a minute (clients check what they wrote). */
  | { t: 'triggered'; folder: Folder; delivery: Delivery }
  /** Nothing at `name` (a path inside `parent`); `parentOk`: its parent folder exists. */
  | { t: 'missing'; parent: Folder | null; name: string; parentOk: boolean };

/** An open write: a file upload, or the trigger file (its content is discarded). */
export type TreeWrite =
  | { kind: 'upload'; upload: Upload<DeliveryFile>; folderKey: string; name: string; transferId: string }
  | { kind: 'trigger'; folderKey: string; folder: Folder; bytes: number };

/** Options of openWrite (from the protocol's open flags). */
export interface OpenWriteOptions {
  /** The client wants to append or resume. */
  append?: boolean;
  /** Fail if the file exists. */
  exclusive?: boolean;
  /** The client may read the file back shortly after (WebDAV). */
  readBack?: boolean;
  /** The size the client announced, checked against the limit before any byte is read. */
  declaredSize?: number;
  /** An empty placeholder (a WebDAV lock on a new name): stored, never delivered unless written. */
  placeholder?: boolean;
  /** See BeginUploadOptions.mdcInWorker. */
  mdcInWorker?: boolean;
}

/** How long the trigger file stays visible after it sent its folder. */
const TRIGGER_SHOWN_MS = 60_000;

const TEMP_SUFFIXES = ['.filepart', '.part', '.partial', '.tmp', '.crdownload'];
const NOISE = new Set(['thumbs.db', 'desktop.ini', '.ds_store']);

/** How often an instance renews its heartbeat, and after how long without one it counts as gone. */
export const HEARTBEAT_MS = 15_000;
const GONE_AFTER_MS = 60_000;

/** The virtual tree. */
export class TreeService {
  /**
   * This process among the daemon instances sharing the store. Protocol sessions, folders
   * their sessions touched and uploads in progress are rows tied to it, so the last clean
   * session end of an account — on whichever instance — sees all of them.
   */
  readonly instanceId = `${os.hostname().slice(0, 40)}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private registered: Promise<void> | undefined;
  /** Sessions open here (re-registered if the instance row was lost). */
  private readonly localSessions = new Map<string, string>();

  constructor(
    private readonly deps: CoreDeps,
    private readonly deliveries: DeliveryService,
    private readonly principalFor: (accountId: string, via: Via) => Promise<Principal | null>,
  ) {}

  private get cfg() {
    return this.deps.config.tree;
  }

  /**
   * True for names stored but never delivered: `*.filepart`, `*.part`, `*.tmp`, dotfiles (the
   * trigger name too where it is no trigger: in a folder inside a delivery), desktop noise.
   */
  isTempName(name: string): boolean {
    const lower = name.toLowerCase();
    return name === this.cfg.triggerName || name.startsWith('.') || name.startsWith('~$') || NOISE.has(lower) || TEMP_SUFFIXES.some((s) => lower.endsWith(s) && lower.length > s.length);
  }

  /** The name a temporary name stands for (`report.pdf.filepart` → `report.pdf`). */
  finalNameOf(name: string): string {
    const lower = name.toLowerCase();
    const suffix = TEMP_SUFFIXES.find((s) => lower.endsWith(s) && lower.length > s.length);
    return suffix ? name.slice(0, -suffix.length) : name;
  }

  // ---------------------------------------------------------------- resolution

  private segments(p: string): string[] {
    if (typeof p !== 'string' || p.includes('\u0000')) throw fail('SEALDROP_E_INVALID_NAME', 'the path contains NUL');
    return path
      .normalize(`/${p}`)
      .split('/')
      .filter((s) => s.length > 0);
  }

  /** The canonical absolute form of a path (`.` and `..` resolved, never above the root). */
  canonical(p: string): string {
    return `/${this.segments(p).join('/')}`;
  }

  /** Writes anywhere under /inbox (or to the root) are refused before any lookup. */
  private assertWritable(rawPath: string): void {
    const seg = this.segments(rawPath);
    if (seg[0] === 'inbox') throw fail('SEALDROP_E_FORBIDDEN', '/inbox is read-only');
    if (seg.length === 0) throw fail('SEALDROP_E_FORBIDDEN', 'the root folder is read-only');
  }

  private outboxFolder(p: Principal, emailSeg: string, sub?: string): Folder {
    const email = normalizeEmail(emailSeg, 'folder');
    const subject = sub === undefined ? undefined : validateSubject(validateFileName(sub, 'folder'), this.deps.config.deliveries.maxSubjectLength);
    const key = subject === undefined ? `outbox/${email}` : `outbox/${email}/${subject}`;
    return {
      key,
      path: subject === undefined ? `/outbox/${email}` : `/outbox/${email}/${subject}`,
      spec: async () => ({
        ownerId: p.accountId,
        recipients: [email],
        level: this.cfg.outboxLevel,
        subject: subject ?? validateSubject(renderSubject(this.cfg.outboxSubject, { sender: p.email, recipient: email }, this.deps.clock.now()), this.deps.config.deliveries.maxSubjectLength),
        expiresInDays: this.deps.config.deliveries.defaultExpiryDays,
        dropFolder: null,
        folderKey: key,
      }),
    };
  }

  private async dropFolderNode(p: Principal, name: string): Promise<Folder | null> {
    const folder = this.deliveries.dropFolder(name);
    if (!folder || !(await this.deliveries.mayWriteDropFolder(p, folder))) return null;
    const key = `drop/${folder.name}`;
    return {
      key,
      path: `/${folder.name}`,
      spec: async () => ({ ...(await this.deliveries.writableDropFolder(p, folder.name)), folderKey: key }),
    };
  }

  private mayUseOutbox(p: Principal): boolean {
    return (p.role === 'member' || p.role === 'admin') && p.scopes.has('send');
  }

  private async fileIn(p: Principal, folder: Folder, name: string): Promise<{ delivery: Delivery; file: DeliveryFile } | null> {
    const delivery = await this.deliveries.folderDelivery(p, folder.key);
    if (!delivery) return null;
    const file = await readEm(this.deps).findOne(DeliveryFileSchema, { deliveryId: delivery.id, kind: 'file', name });
    return file ? { delivery, file } : null;
  }

  /** The files and folders of a delivery (at most a few thousand rows), by path. */
  private async rowsOf(deliveryId: string): Promise<DeliveryFile[]> {
    return readEm(this.deps).find(DeliveryFileSchema, { deliveryId, kind: { $in: ['file', 'dir'] } }, { orderBy: { name: 'asc' } });
  }

  /** A path inside a folder's delivery: a file, a folder (made, or holding files), or nothing. */
  private async inside(p: Principal, folder: Folder, segs: string[]): Promise<Node> {
    const rel = validateRelativePath(segs.join('/'));
    const delivery = await this.deliveries.folderDelivery(p, folder.key);
    if (!delivery) return { t: 'missing', parent: folder, name: rel, parentOk: segs.length === 1 };
    const rows = await this.rowsOf(delivery.id);
    const row = rows.find((r) => r.name === rel);
    if (row?.kind === 'file') return { t: 'folderFile', folder, delivery, file: row };
    if (row?.kind === 'dir' || rows.some((r) => r.name.startsWith(`${rel}/`))) return { t: 'folderDir', folder, delivery, rel };
    const parent = segs.slice(0, -1).join('/');
    const parentOk = segs.length === 1 || rows.some((r) => (r.kind === 'dir' && r.name === parent) || r.name.startsWith(`${parent}/`));
    return { t: 'missing', parent: folder, name: rel, parentOk };
  }

  private async resolve(p: Principal, rawPath: string): Promise<Node> {
    const node = await this.resolveNode(p, rawPath);
    if (node.t === 'missing' && node.parent && node.name === this.cfg.triggerName) {
      const since = new Date(this.deps.clock.now().getTime() - TRIGGER_SHOWN_MS);
      const sent = await readEm(this.deps).findOne(DeliverySchema, { senderId: p.accountId, folderKey: node.parent.key, state: 'sent', sentAt: { $gte: since } }, { orderBy: { sentAt: 'desc' } });
      if (sent) return { t: 'triggered', folder: node.parent, delivery: sent };
    }
    return node;
  }

  private async resolveNode(p: Principal, rawPath: string): Promise<Node> {
    const seg = this.segments(rawPath);
    const [a, b, c, d, ...more] = seg;
    if (a === undefined) return { t: 'root' };
    if (a === 'inbox') {
      if (!p.scopes.has('fetch')) throw fail('SEALDROP_E_NOT_FOUND', 'no such file or folder');
      if (b === undefined) return { t: 'inbox' };
      const delivery = await this.inboxDelivery(p, b);
      if (c === undefined) return { t: 'inboxDelivery', delivery, name: b, prefix: '' };
      const rest = seg.slice(2).join('/');
      const entry = (await this.inboxFiles(p, delivery)).find((f) => f.name === rest);
      if (entry) return { t: 'inboxFile', delivery, file: entry.file, name: rest };
      if ((await this.inboxFiles(p, delivery)).some((f) => f.name.startsWith(`${rest}/`))) return { t: 'inboxDelivery', delivery, name: b, prefix: rest };
      throw fail('SEALDROP_E_NOT_FOUND', 'no such file');
    }
    if (a === 'outbox') {
      if (!this.mayUseOutbox(p)) throw fail('SEALDROP_E_NOT_FOUND', 'no such file or folder');
      if (b === undefined) return { t: 'outbox' };
      const folder = this.outboxFolder(p, b);
      if (c === undefined) return { t: 'folder', folder, virtual: true };
      const name = validateFileName(c);
      if (d === undefined) {
        // Directly in a recipient folder: a file, or a subject subfolder (its own delivery).
        const found = await this.fileIn(p, folder, name);
        if (found) return { t: 'folderFile', folder, ...found };
        const sub = this.outboxFolder(p, b, c);
        if (await this.deliveries.folderDelivery(p, sub.key)) return { t: 'folder', folder: sub, virtual: false };
        return { t: 'missing', parent: folder, name, parentOk: true };
      }
      const sub = this.outboxFolder(p, b, c);
      if (!(await this.deliveries.folderDelivery(p, sub.key))) {
        // Writing straight into a new subfolder creates it.
        return { t: 'missing', parent: sub, name: validateRelativePath([d, ...more].join('/')), parentOk: more.length === 0 };
      }
      return this.inside(p, sub, [d, ...more]);
    }
    const folder = await this.dropFolderNode(p, a);
    if (!folder) throw fail('SEALDROP_E_NOT_FOUND', 'no such file or folder');
    if (b === undefined) return { t: 'folder', folder, virtual: true };
    return this.inside(p, folder, seg.slice(1));
  }

  // ---------------------------------------------------------------- inbox

  /** The folder name of a delivery in /inbox: `YYYY-MM-DD subject [id8]`. */
  inboxName(d: Delivery): string {
    const date = (d.sentAt ?? d.createdAt).toISOString().slice(0, 10);
    // The subject is cut after 80 characters (code points: a cut through an emoji's surrogate
    // pair made the name unencodable).
    const cleaned = displayName(d.subject).replace(/\s+/g, ' ').trim();
    // At most 80 characters and 160 UTF-8 bytes: the whole name stays well under the 255 bytes
    // a file name may have on the clients' disks.
    let subject = '';
    let bytes = 0;
    for (const ch of Array.from(cleaned).slice(0, 80)) {
      bytes += Buffer.byteLength(ch);
      if (bytes > 160) break;
      subject += ch;
    }
    subject = subject.trim().replace(/\.+$/, '');
    return `${date} ${subject} [${d.id.slice(0, 8)}]`;
  }

  private async inboxDeliveries(p: Principal): Promise<Delivery[]> {
    const em = readEm(this.deps);
    const rows = await em.find(DeliveryRecipientSchema, { accountId: p.accountId, state: { $in: ['available', 'downloaded'] } });
    if (rows.length === 0) return [];
    const now = this.deps.clock.now().getTime();
    const ds = await em.find(DeliverySchema, { id: { $in: rows.map((r) => r.deliveryId) }, state: 'sent' }, { orderBy: { sentAt: 'desc' } });
    return ds.filter((d) => d.expiresAt.getTime() > now);
  }

  private async inboxDelivery(p: Principal, name: string): Promise<Delivery> {
    const m = /\[([0-9a-f]{8})\]$/.exec(name);
    const d = m ? (await this.inboxDeliveries(p)).find((x) => x.id.startsWith(m[1] as string) && this.inboxName(x) === name) : undefined;
    if (!d) throw fail('SEALDROP_E_NOT_FOUND', 'no such delivery in your inbox');
    return d;
  }

  private async inboxFiles(p: Principal, d: Delivery): Promise<Array<{ name: string; file: DeliveryFile; size: number }>> {
    const em = readEm(this.deps);
    const files = await em.find(DeliveryFileSchema, { deliveryId: d.id, temp: false, blobKey: { $ne: null } }, { orderBy: { name: 'asc' } });
    const key = d.level >= 3 ? await em.findOne(SecuPassKeySchema, { accountId: p.accountId, destroyedAt: null }) : null;
    const wraps = key ? await em.find(KeyWrapSchema, { keyId: key.id, fileId: { $in: files.map((f) => f.id) } }) : [];
    const out: Array<{ name: string; file: DeliveryFile; size: number }> = [];
    const names = new Set(files.filter((f) => f.kind === 'file').map((f) => (d.level >= 3 ? `${f.name}.pgp` : f.name)));
    for (const f of files) {
      let size = f.size;
      if (d.level >= 3) {
        const wrap = wraps.find((w) => w.fileId === f.id);
        if (!wrap) continue;
        size = wrap.pkesk.length + f.blobSize;
      }
      let name = f.kind === 'message' ? 'message.txt' : f.name;
      if (d.level >= 3) name += '.pgp';
      if (f.kind === 'message' && names.has(name)) name = `message (sealdrop).txt${d.level >= 3 ? '.pgp' : ''}`;
      out.push({ name, file: f, size });
    }
    return out;
  }

  // ---------------------------------------------------------------- reading the tree

  /** Stat of a path. */
  async stat(p: Principal, rawPath: string): Promise<TreeEntry> {
    const node = await this.resolve(p, rawPath);
    const now = this.deps.clock.now();
    const name = path.basename(this.canonical(rawPath)) || '/';
    switch (node.t) {
      case 'root':
      case 'inbox':
      case 'outbox':
        return { name, kind: 'dir', size: 0, mtime: now, readonly: node.t !== 'outbox' };
      case 'folder': {
        const d = await this.deliveries.folderDelivery(p, node.folder.key);
        return { name, kind: 'dir', size: 0, mtime: d?.lastActivityAt ?? now, readonly: false };
      }
      case 'folderDir':
        return { name, kind: 'dir', size: 0, mtime: node.delivery.lastActivityAt ?? node.delivery.createdAt, readonly: false };
      case 'inboxDelivery':
        return { name, kind: 'dir', size: 0, mtime: node.delivery.sentAt ?? node.delivery.createdAt, readonly: true };
      case 'inboxFile': {
        const entry = (await this.inboxFiles(p, node.delivery)).find((f) => f.file.id === node.file.id);
        return { name, kind: 'file', size: entry?.size ?? 0, mtime: node.file.createdAt, readonly: true, id: node.file.id };
      }
      case 'folderFile':
        return { name, kind: 'file', size: node.file.size, mtime: node.file.createdAt, readonly: false, id: node.file.id };
      case 'triggered':
        return { name, kind: 'file', size: 0, mtime: node.delivery.sentAt ?? now, readonly: false, id: `sent-${node.delivery.id}` };
      case 'missing':
        throw fail('SEALDROP_E_NOT_FOUND', 'no such file or folder');
    }
  }

  /** The direct children of folder `prefix` ('' for the top) among paths, as entries. */
  private childrenOf<T extends { name: string }>(items: T[], prefix: string, entry: (item: T, name: string) => TreeEntry, dirTime: Date): TreeEntry[] {
    const start = prefix ? `${prefix}/` : '';
    const out = new Map<string, TreeEntry>();
    for (const item of items) {
      if (!item.name.startsWith(start) || item.name === prefix) continue;
      const rest = item.name.slice(start.length);
      const slash = rest.indexOf('/');
      if (slash < 0) out.set(rest, entry(item, rest));
      else if (!out.has(rest.slice(0, slash))) out.set(rest.slice(0, slash), { name: rest.slice(0, slash), kind: 'dir', size: 0, mtime: dirTime, readonly: false });
    }
    return [...out.values()];
  }

  /** The entries of a folder. */
  async list(p: Principal, rawPath: string): Promise<TreeEntry[]> {
    const node = await this.resolve(p, rawPath);
    const now = this.deps.clock.now();
    const em = readEm(this.deps);
    const dir = (name: string, mtime: Date = now, readonly = false): TreeEntry => ({ name, kind: 'dir', size: 0, mtime, readonly });
    const rowEntry = (r: DeliveryFile, name: string): TreeEntry => (r.kind === 'dir' ? dir(name, r.createdAt) : { name, kind: 'file', size: r.size, mtime: r.createdAt, readonly: false, id: r.id });
    switch (node.t) {
      case 'root': {
        const out: TreeEntry[] = [];
        if (p.scopes.has('fetch')) out.push(dir('inbox', now, true));
        if (this.mayUseOutbox(p)) out.push(dir('outbox'));
        for (const f of this.deps.config.dropFolders) if (await this.deliveries.mayWriteDropFolder(p, f)) out.push(dir(f.name));
        return out;
      }
      case 'outbox': {
        const open = await em.find(DeliverySchema, { senderId: p.accountId, state: 'open', folderKey: { $like: 'outbox/%' } });
        const emails = [...new Set(open.map((d) => (d.folderKey as string).split('/')[1] as string))].sort();
        return emails.map((e) => dir(e));
      }
      case 'folder': {
        const d = await this.deliveries.folderDelivery(p, node.folder.key);
        const out = d ? this.childrenOf(await this.rowsOf(d.id), '', rowEntry, d.lastActivityAt ?? d.createdAt) : [];
        if (node.folder.key.startsWith('outbox/') && node.folder.key.split('/').length === 2) {
          // `_` and `%` are LIKE wildcards and may be part of an address: only the rows that
          // really lie under this folder count (x_y@… would otherwise list xzy@…'s subfolders).
          const prefix = `${node.folder.key}/`;
          const subs = await em.find(DeliverySchema, { senderId: p.accountId, state: 'open', folderKey: { $like: `${node.folder.key}/%` } });
          for (const sub of subs) {
            const key = sub.folderKey as string;
            if (key.startsWith(prefix) && !key.includes('/', prefix.length)) out.push(dir(key.slice(prefix.length), sub.lastActivityAt ?? sub.createdAt));
          }
        }
        return out;
      }
      case 'folderDir':
        return this.childrenOf(await this.rowsOf(node.delivery.id), node.rel, rowEntry, node.delivery.lastActivityAt ?? node.delivery.createdAt);
      case 'inbox':
        return (await this.inboxDeliveries(p)).map((d) => dir(this.inboxName(d), d.sentAt ?? d.createdAt, true));
      case 'inboxDelivery': {
        const files = await this.inboxFiles(p, node.delivery);
        const sent = node.delivery.sentAt ?? node.delivery.createdAt;
        return this.childrenOf(files, node.prefix, (f, name) => ({ name, kind: 'file', size: f.size, mtime: f.file.createdAt, readonly: true, id: f.file.id }), sent).map((e) => ({ ...e, readonly: true }));
      }
      default:
        throw fail('SEALDROP_E_WRONG_STATE', 'not a folder');
    }
  }

  // ---------------------------------------------------------------- changing the tree

  /**
   * Creates a folder. Recipient folders are virtual (always there); a folder directly in one is
   * a subject subfolder (its own open delivery); deeper, and in drop folders, it is a folder
   * inside the delivery, kept in its files' paths.
   */
  async mkdir(p: Principal, rawPath: string): Promise<void> {
    this.assertWritable(rawPath);
    const seg = this.segments(rawPath);
    if (seg[0] === 'outbox' && this.mayUseOutbox(p) && seg.length <= 3) {
      if (seg.length < 2) throw fail('SEALDROP_E_CONFLICT', 'the folder exists');
      const folder = this.outboxFolder(p, seg[1] as string, seg[2]);
      if (seg.length === 2) return;
      if (await this.fileIn(p, this.outboxFolder(p, seg[1] as string), validateFileName(seg[2]))) throw fail('SEALDROP_E_CONFLICT', 'a file of that name exists');
      if (await this.deliveries.folderDelivery(p, folder.key)) throw fail('SEALDROP_E_CONFLICT', 'the folder exists');
      await this.deliveries.ensureFolderDelivery(p, await folder.spec());
      return;
    }
    const node = await this.resolve(p, rawPath);
    if (node.t === 'folder' || node.t === 'folderDir' || node.t === 'folderFile') throw fail('SEALDROP_E_CONFLICT', 'the name exists');
    if (node.t !== 'missing' || !node.parent) throw fail('SEALDROP_E_FORBIDDEN', 'folders can be made only in /outbox/<e-mail address>/ and in drop folders');
    if (!node.parentOk) throw fail('SEALDROP_E_NOT_FOUND', 'the parent folder does not exist', { parentMissing: true });
    const { delivery } = await this.deliveries.ensureFolderDelivery(p, await node.parent.spec());
    await this.deliveries.makeDir(p, delivery.id, node.name);
    await this.touch(p, node.parent.key);
  }

  /** Removes an empty folder (a subject subfolder's open delivery without files, or an empty folder inside a delivery). */
  async rmdir(p: Principal, rawPath: string): Promise<void> {
    this.assertWritable(rawPath);
    const node = await this.resolve(p, rawPath);
    if (node.t === 'folderDir') {
      await this.deliveries.removeDir(p, node.delivery.id, node.rel, true);
      return;
    }
    if (node.t !== 'folder') throw fail(node.t === 'missing' ? 'SEALDROP_E_NOT_FOUND' : 'SEALDROP_E_FORBIDDEN', 'not a folder you can remove');
    const d = await this.deliveries.folderDelivery(p, node.folder.key);
    if (!d) return;
    if (!(await this.deliveries.discardIfEmpty(d.id))) throw fail('SEALDROP_E_WRONG_STATE', 'the folder is not empty');
  }

  /** Removes one of the caller's unsent files. */
  async remove(p: Principal, rawPath: string): Promise<void> {
    this.assertWritable(rawPath);
    const node = await this.resolve(p, rawPath);
    if (node.t === 'inboxFile' || node.t === 'inboxDelivery') throw fail('SEALDROP_E_FORBIDDEN', '/inbox is read-only');
    if (node.t === 'triggered') return;
    if (node.t !== 'folderFile') throw fail('SEALDROP_E_NOT_FOUND', 'no such file');
    await this.deliveries.removeFile(p, node.delivery.id, node.file.id);
    await this.touch(p, node.folder.key);
  }

  /**
   * Removes a file, or a folder with everything in it: a folder inside a delivery, or a subject
   * subfolder (its open delivery is discarded). Recipient and drop folders themselves stay.
   */
  async removeTree(p: Principal, rawPath: string): Promise<void> {
    this.assertWritable(rawPath);
    const node = await this.resolve(p, rawPath);
    switch (node.t) {
      case 'triggered':
        return;
      case 'folderFile':
        await this.deliveries.removeFile(p, node.delivery.id, node.file.id);
        await this.touch(p, node.folder.key);
        return;
      case 'folderDir':
        await this.deliveries.removeDir(p, node.delivery.id, node.rel, false);
        await this.touch(p, node.folder.key);
        return;
      case 'folder': {
        if (node.virtual) throw fail('SEALDROP_E_FORBIDDEN', 'recipient and drop folders always exist; remove what is in them');
        const d = await this.deliveries.folderDelivery(p, node.folder.key);
        if (d) await this.deliveries.discardFolder(p, d.id);
        return;
      }
      case 'missing':
        throw fail('SEALDROP_E_NOT_FOUND', 'no such file or folder');
      default:
        throw fail('SEALDROP_E_FORBIDDEN', 'this cannot be removed');
    }
  }

  /**
   * Renames or moves a file or folder within its delivery. A rename from a temporary name to a
   * final one completes the file; a rename to the trigger name sends the folder. With
   * `overwrite` an existing target is replaced, otherwise it is an error. A subject subfolder
   * can be renamed (its delivery's subject changes). Moves between deliveries are refused.
   * Returns whether a target was replaced.
   */
  async rename(p: Principal, fromPath: string, toPath: string, overwrite: boolean): Promise<boolean> {
    this.assertWritable(fromPath);
    this.assertWritable(toPath);
    const from = await this.resolve(p, fromPath);
    if (from.t === 'inboxFile' || from.t === 'inboxDelivery') throw fail('SEALDROP_E_FORBIDDEN', '/inbox is read-only');
    const to = await this.resolve(p, toPath);
    if (from.t === 'folder' && !from.virtual) return this.renameSubfolder(p, from.folder, toPath, to);
    if (from.t !== 'folderFile' && from.t !== 'folderDir') throw fail(from.t === 'missing' ? 'SEALDROP_E_NOT_FOUND' : 'SEALDROP_E_FORBIDDEN', from.t === 'missing' ? 'no such file or folder' : 'only your unsent files and folders can be moved');
    const { folder, delivery } = from;
    const fromRel = from.t === 'folderFile' ? from.file.name : from.rel;
    const target = this.sameDelivery(to, folder.key);
    if (!target) throw fail('SEALDROP_E_FORBIDDEN', 'files can be moved only within their delivery (the same recipient or drop folder)');
    if (target.missing && !target.parentOk) throw fail('SEALDROP_E_NOT_FOUND', 'the destination folder does not exist', { parentMissing: true });
    if (from.t === 'folderFile' && target.rel.split('/').pop() === this.cfg.triggerName && !target.rel.includes('/')) {
      await this.deliveries.removeFile(p, delivery.id, from.file.id);
      await this.trigger(p, folder);
      return false;
    }
    if (from.t === 'folderFile' && !target.rel.includes('/') && !fromRel.includes('/') && to.t !== 'folderDir') {
      // A plain rename in place: completes temporary names.
      if (to.t === 'folderFile' && !overwrite) throw fail('SEALDROP_E_CONFLICT', 'a file of that name exists');
      await this.deliveries.renameFile(p, delivery.id, from.file.id, target.rel, this.isTempName(target.rel));
      await this.touch(p, folder.key);
      return to.t === 'folderFile';
    }
    const replaced = await this.deliveries.movePath(p, delivery.id, fromRel, target.rel, overwrite, (name) => this.isTempName(name));
    await this.touch(p, folder.key);
    return replaced;
  }

  /**
   * Copies a file or folder (with `shallow` only the folder itself) within its delivery.
   * Returns whether a target was replaced.
   */
  async copy(p: Principal, fromPath: string, toPath: string, overwrite: boolean, shallow = false): Promise<boolean> {
    this.assertWritable(toPath);
    const from = await this.resolve(p, fromPath);
    if (from.t === 'inboxFile' || from.t === 'inboxDelivery') throw fail('SEALDROP_E_FORBIDDEN', 'files in /inbox cannot be copied on the server; download them');
    if (from.t !== 'folderFile' && from.t !== 'folderDir') throw fail(from.t === 'missing' ? 'SEALDROP_E_NOT_FOUND' : 'SEALDROP_E_FORBIDDEN', from.t === 'missing' ? 'no such file or folder' : 'only your unsent files and folders can be copied');
    const to = await this.resolve(p, toPath);
    const target = this.sameDelivery(to, from.folder.key);
    if (!target) throw fail('SEALDROP_E_FORBIDDEN', 'files can be copied only within their delivery (the same recipient or drop folder)');
    if (target.missing && !target.parentOk) throw fail('SEALDROP_E_NOT_FOUND', 'the destination folder does not exist', { parentMissing: true });
    const replaced = await this.deliveries.copyPath(p, from.delivery.id, from.t === 'folderFile' ? from.file.name : from.rel, target.rel, overwrite, shallow);
    await this.touch(p, from.folder.key);
    return replaced;
  }

  /** The path of `to` inside the delivery of folder `key`, or null if `to` is elsewhere. */
  private sameDelivery(to: Node, key: string): { rel: string; missing: boolean; parentOk: boolean } | null {
    if (to.t === 'folderFile' && to.folder.key === key) return { rel: to.file.name, missing: false, parentOk: true };
    if (to.t === 'folderDir' && to.folder.key === key) return { rel: to.rel, missing: false, parentOk: true };
    if (to.t === 'missing' && to.parent?.key === key) return { rel: to.name, missing: true, parentOk: to.parentOk };
    return null;
  }

  private async renameSubfolder(p: Principal, folder: Folder, toPath: string, to: Node): Promise<boolean> {
    const seg = this.segments(toPath);
    const fromSeg = folder.key.split('/');
    if (to.t !== 'missing' || seg.length !== 3 || seg[0] !== 'outbox' || normalizeEmail(seg[1], 'folder') !== fromSeg[1]) {
      throw fail(to.t === 'missing' ? 'SEALDROP_E_FORBIDDEN' : 'SEALDROP_E_CONFLICT', to.t === 'missing' ? 'a subject folder can be renamed only within its recipient folder' : 'the destination exists');
    }
    const target = this.outboxFolder(p, seg[1] as string, seg[2]);
    const d = await this.deliveries.folderDelivery(p, folder.key);
    if (!d) throw fail('SEALDROP_E_NOT_FOUND', 'no such folder');
    // An upload in progress would complete under the old name, where nothing finds it.
    if (await this.transferOpen(p.accountId, folder.key, await this.liveInstances())) throw fail('SEALDROP_E_WRONG_STATE', 'an upload into the folder is in progress; rename it once the upload is done');
    const spec = await target.spec();
    await this.deliveries.renameFolder(p, d.id, target.key, spec.subject);
    // What the account's sessions wrote there is sent at their clean end under the new name.
    await inTx(this.deps, (em) => em.nativeUpdate(FolderActivitySchema, { accountId: p.accountId, folderKey: folder.key, kind: 'touched' }, { folderKey: target.key }));
    await this.touch(p, target.key);
    return false;
  }

  /**
   * Opens a file for reading: in /inbox a delivery's file (a standard .pgp file at level 3/4);
   * in a folder one of the caller's unsent files, only within its read-back window.
   */
  async openRead(p: Principal, rawPath: string): Promise<Download> {
    const node = await this.resolve(p, rawPath);
    if (node.t === 'folderFile') return this.deliveries.readBack(p, node.delivery.id, node.file.id);
    if (node.t === 'triggered') return { stream: Readable.from([]), size: 0, fileName: this.cfg.triggerName, contentType: 'application/octet-stream', encrypted: false };
    if (node.t !== 'inboxFile') throw fail(node.t === 'missing' ? 'SEALDROP_E_NOT_FOUND' : 'SEALDROP_E_WRONG_STATE', node.t === 'missing' ? 'no such file' : 'not a file');
    return this.deliveries.download(p, node.delivery.id, node.file.kind === 'message' ? { kind: 'message' } : node.file.id);
  }

  /**
   * Opens a file for writing in a folder. Temporary names are stored but never delivered; the
   * trigger name sends the folder when closed. Appending (resume) is refused: uploads are whole.
   */
  async openWrite(p: Principal, rawPath: string, options: OpenWriteOptions = {}): Promise<TreeWrite> {
    this.assertWritable(rawPath);
    const node = await this.resolve(p, rawPath);
    if (node.t === 'inbox' || node.t === 'inboxDelivery' || node.t === 'inboxFile') throw fail('SEALDROP_E_FORBIDDEN', '/inbox is read-only');
    if (node.t === 'folderDir' || node.t === 'folder') throw fail('SEALDROP_E_CONFLICT', 'a folder of that name exists');
    if (node.t === 'triggered') return { kind: 'trigger', folderKey: node.folder.key, folder: node.folder, bytes: 0 };
    if (node.t !== 'missing' && node.t !== 'folderFile') throw fail('SEALDROP_E_FORBIDDEN', 'files can be written only into /outbox/<e-mail address>/ and drop folders');
    if (node.t === 'missing' && node.parent && !node.parentOk) throw fail('SEALDROP_E_NOT_FOUND', 'the parent folder does not exist', { parentMissing: true });
    const folder = node.t === 'missing' ? node.parent : node.folder;
    const name = node.t === 'missing' ? node.name : node.file.name;
    if (!folder) throw fail('SEALDROP_E_FORBIDDEN', 'files can be written only into /outbox/<e-mail address>/ and drop folders');
    if (node.t === 'folderFile' && options.exclusive) throw fail('SEALDROP_E_CONFLICT', 'the file exists');
    if (options.append) throw fail('SEALDROP_E_WRONG_STATE', 'appending and resuming are not supported: upload the whole file again');
    if (name === this.cfg.triggerName) return { kind: 'trigger', folderKey: folder.key, folder, bytes: 0 };
    const base = name.split('/').pop() as string;
    const temp = options.placeholder === true || this.isTempName(base);
    // The transfer is on record before the upload joins (or creates) the folder's delivery: a
    // failed first upload removes the delivery it created only if no other upload into the
    // folder runs (on any instance), and one that is still starting counts.
    const transferId = await this.transferStarted(p, folder.key);
    try {
      const upload = await this.deliveries.beginUpload(p, { folder: await folder.spec() }, name, {
        temp,
        othersUploading: async () => this.transferOpen(p.accountId, folder.key, await this.liveInstances(), transferId),
        literalName: this.finalNameOf(base),
        readBack: options.readBack ?? false,
        path: true,
        mdcInWorker: options.mdcInWorker ?? true,
        ...(options.declaredSize !== undefined ? { declaredSize: options.declaredSize } : {}),
      });
      return { kind: 'upload', upload, folderKey: folder.key, name, transferId };
    } catch (err) {
      await this.transferEnded(transferId);
      throw err;
    }
  }

  /**
   * Closes a write: completes the upload (or, for the trigger, sends the folder). A write that is
   * abandoned must be passed to abortWrite instead.
   */
  async closeWrite(p: Principal, w: TreeWrite): Promise<void> {
    if (w.kind === 'trigger') {
      await this.trigger(p, w.folder);
      return;
    }
    try {
      await w.upload.complete();
    } finally {
      await this.transferEnded(w.transferId);
      await this.touch(p, w.folderKey);
    }
  }

  /** Abandons a write: a partial file never joins a delivery. */
  async abortWrite(p: Principal, w: TreeWrite): Promise<void> {
    if (w.kind === 'trigger') return;
    try {
      await w.upload.abort();
    } finally {
      await this.transferEnded(w.transferId);
    }
  }

  // ---------------------------------------------------------------- sending

  private async trigger(p: Principal, folder: Folder): Promise<void> {
    const sent = await this.sendFolder(p, folder.key, 'trigger');
    if (!sent) this.deps.log.info({ folder: folder.key, account: p.email }, 'trigger file in a folder with nothing to send');
  }

  /** Sends the caller's open delivery of a folder if it holds a deliverable file; returns whether it did. */
  async sendFolder(p: Principal, folderKey: string, reason: 'trigger' | 'session_end' | 'idle'): Promise<boolean> {
    const d = await this.deliveries.folderDelivery(p, folderKey);
    if (!d) return false;
    const files = await readEm(this.deps).count(DeliveryFileSchema, { deliveryId: d.id, kind: 'file', temp: false });
    if (files === 0) return false;
    await this.deliveries.send(p, d.id);
    await inTx(this.deps, async (em) => {
      await audit(em, { action: 'folder.sent', actor: actorOf(p), targetType: 'delivery', targetId: d.id, data: { folder: folderKey, reason } }, this.deps.clock.now());
      await em.nativeDelete(FolderActivitySchema, { accountId: p.accountId, folderKey, kind: 'touched' });
    });
    return true;
  }

  // ---------------------------------------------------------------- activity across instances

  /** Registers this instance once (idempotent; the heartbeat re-registers it if it was lost). */
  private ensureInstance(): Promise<void> {
    this.registered ??= this.register().catch((err: unknown) => {
      this.registered = undefined;
      throw err;
    });
    return this.registered;
  }

  private async register(): Promise<void> {
    const now = this.deps.clock.now();
    await inTx(this.deps, async (em) => {
      const row = await em.findOne(DaemonInstanceSchema, { id: this.instanceId });
      if (row) row.heartbeatAt = now;
      else em.create(DaemonInstanceSchema, { id: this.instanceId, startedAt: now, heartbeatAt: now });
      for (const [id, accountId] of this.localSessions) {
        if (!(await em.findOne(ProtocolSessionSchema, { id }))) em.create(ProtocolSessionSchema, { id, accountId, instanceId: this.instanceId, openedAt: now });
      }
    });
  }

  /**
   * Renews this instance's heartbeat (every HEARTBEAT_MS) and removes instances whose heartbeat
   * stopped: their sessions, touched folders and uploads in progress go with them.
   */
  async heartbeat(): Promise<void> {
    await this.ensureInstance();
    const now = this.deps.clock.now();
    const renewed = await inTx(this.deps, (em) => em.nativeUpdate(DaemonInstanceSchema, { id: this.instanceId }, { heartbeatAt: now }));
    if (renewed === 0) {
      // Another instance took this one for gone (a stalled process): register again.
      this.registered = undefined;
      await this.ensureInstance();
    }
    const gone = new Date(now.getTime() - GONE_AFTER_MS);
    await inTx(this.deps, (em) => em.nativeDelete(DaemonInstanceSchema, { heartbeatAt: { $lt: gone }, id: { $ne: this.instanceId } }));
  }

  /** Forgets every other instance at once (SQLite: no other process can be running). */
  async removeOtherInstances(): Promise<number> {
    return inTx(this.deps, (em) => em.nativeDelete(DaemonInstanceSchema, { id: { $ne: this.instanceId } }));
  }

  /** This instance stops: its rows go (sessions still open here end without sending). */
  async unregister(): Promise<void> {
    this.localSessions.clear();
    await inTx(this.deps, (em) => em.nativeDelete(DaemonInstanceSchema, { id: this.instanceId }));
    this.registered = undefined;
  }

  /** Ids of instances alive now (heartbeat recent). */
  private async liveInstances(): Promise<string[]> {
    const cutoff = new Date(this.deps.clock.now().getTime() - GONE_AFTER_MS);
    const rows = await readEm(this.deps).find(DaemonInstanceSchema, { heartbeatAt: { $gte: cutoff } }, { fields: ['id'] });
    return rows.map((r) => r.id);
  }

  /** Notes that the account's sessions wrote into a folder (sent at the last clean session end). */
  private async touch(p: Principal, folderKey: string): Promise<void> {
    await this.ensureInstance();
    await inTx(this.deps, async (em) => {
      const seen = await em.findOne(FolderActivitySchema, { accountId: p.accountId, folderKey, kind: 'touched', instanceId: this.instanceId });
      if (seen) seen.at = this.deps.clock.now();
      else em.create(FolderActivitySchema, { id: randomUUID(), accountId: p.accountId, folderKey, kind: 'touched', instanceId: this.instanceId, at: this.deps.clock.now() });
    });
  }

  private async transferStarted(p: Principal, folderKey: string): Promise<string> {
    await this.ensureInstance();
    const id = randomUUID();
    await inTx(this.deps, async (em) => {
      em.create(FolderActivitySchema, { id, accountId: p.accountId, folderKey, kind: 'transfer', instanceId: this.instanceId, at: this.deps.clock.now() });
    });
    return id;
  }

  private async transferEnded(id: string): Promise<void> {
    await inTx(this.deps, (em) => em.nativeDelete(FolderActivitySchema, { id }));
  }

  /** Whether an upload into the folder is in progress on a live instance (other than transfer `except`). */
  private async transferOpen(accountId: string, folderKey: string, live: string[], except?: string): Promise<boolean> {
    const where = { accountId, folderKey, kind: 'transfer' as const, instanceId: { $in: live }, ...(except ? { id: { $ne: except } } : {}) };
    return (await readEm(this.deps).count(FolderActivitySchema, where)) > 0;
  }

  /** A protocol session of the account began. */
  async sessionOpened(p: Principal, sessionId: string): Promise<void> {
    await this.ensureInstance();
    this.localSessions.set(sessionId, p.accountId);
    await inTx(this.deps, async (em) => {
      if (await em.findOne(ProtocolSessionSchema, { id: sessionId })) return;
      em.create(ProtocolSessionSchema, { id: sessionId, accountId: p.accountId, instanceId: this.instanceId, openedAt: this.deps.clock.now() });
    });
  }

  /** Sessions of the account open now on live instances. */
  async sessionCount(accountId: string, live?: string[]): Promise<number> {
    return readEm(this.deps).count(ProtocolSessionSchema, { accountId, instanceId: { $in: live ?? (await this.liveInstances()) } });
  }

  /**
   * A session ended. If it ended cleanly and it was the account's last on any live instance,
   * every folder its sessions touched with no upload in progress is sent (one delivery, one
   * mail each; when two last sessions end at once, the row lock in send lets one win). An
   * abnormal end sends nothing.
   */
  async sessionClosed(p: Principal, sessionId: string, clean: boolean): Promise<void> {
    this.localSessions.delete(sessionId);
    await inTx(this.deps, (em) => em.nativeDelete(ProtocolSessionSchema, { id: sessionId }));
    if (!clean || !this.cfg.sendOnSessionEnd) return;
    const live = await this.liveInstances();
    if ((await this.sessionCount(p.accountId, live)) > 0) return;
    const touched = await readEm(this.deps).find(FolderActivitySchema, { accountId: p.accountId, kind: 'touched', instanceId: { $in: live } });
    for (const folderKey of new Set(touched.map((t) => t.folderKey))) {
      if (await this.transferOpen(p.accountId, folderKey, live)) continue;
      try {
        await this.sendFolder(p, folderKey, 'session_end');
      } catch (err) {
        if (!isSealdropError(err)) throw err;
        this.deps.log.warn({ folder: folderKey, account: p.email, code: err.code, error: err.message }, 'could not send a folder at session end');
      }
    }
  }

  /** Sends open folder deliveries idle for `tree.idleSendSeconds` (if on) with no upload in progress on any instance. Returns how many. */
  async sendIdle(): Promise<number> {
    const idle = this.cfg.idleSendSeconds;
    if (idle <= 0) return 0;
    const cutoff = new Date(this.deps.clock.now().getTime() - idle * 1000);
    const due = await readEm(this.deps).find(DeliverySchema, { state: 'open', folderKey: { $ne: null }, lastActivityAt: { $lte: cutoff } }, { limit: 200 });
    let sent = 0;
    const live = due.length ? await this.liveInstances() : [];
    for (const d of due) {
      const folderKey = d.folderKey as string;
      if (await this.transferOpen(d.senderId, folderKey, live)) continue;
      const p = await this.principalFor(d.senderId, 'system');
      if (!p) continue;
      try {
        if (await this.sendFolder(p, folderKey, 'idle')) sent++;
      } catch (err) {
        if (!isSealdropError(err)) throw err;
        this.deps.log.warn({ deliveryId: d.id, code: err.code, error: err.message }, 'idle send failed');
      }
    }
    return sent;
  }

  /**
   * Removes open tree deliveries without files (left by an interrupted first upload) and idle
   * for `graceMs` (uploads in flight keep theirs active). Returns how many.
   */
  async removeEmptyFolders(graceMs = 0): Promise<number> {
    const em = readEm(this.deps);
    const cutoff = new Date(this.deps.clock.now().getTime() - graceMs);
    const open = await em.find(DeliverySchema, { state: 'open', folderKey: { $ne: null }, lastActivityAt: { $lte: cutoff } });
    let n = 0;
    for (const d of open) if (await this.deliveries.discardIfEmpty(d.id)) n++;
    return n;
  }

}

