/**
 * DeliveryService: the delivery process. Create, add files (encrypted as they stream in), send,
 * release (server-side with a SecuPass, or client-side wraps), re-release after a reset, list,
 * download, revoke, expiry — every state change audited, every rule enforced here so that all
 * front-ends (HTTP, SFTP, WebDAV, UI, CLI) behave the same.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { pipeline, Readable } from 'node:stream';
import { LockMode } from '@mikro-orm/core';
import { decryptSeipdV1, decryptSeipdV2, encryptSeipdV2, newKey, openWith as openWithKey, sealWith as sealWithKey, verifySeipdV1 } from '../crypto/at-rest.ts';
import { checkClientWrap, unwrapSessionKey, wrapSessionKey } from '../crypto/keys.ts';
import { MessageSplitter } from '../crypto/message-split.ts';
import { parsePkesk } from '../crypto/packets.ts';
import { createSeipdV1Encryptor } from '../crypto/seipd-v1.ts';
import type { StagingSource } from '../util/recycle.ts';
import type { DropFolderConfig } from '../config/schema.ts';
import {
  AccountSchema,
  DeliveryFileSchema,
  DeliveryRecipientSchema,
  DeliverySchema,
  KeyWrapSchema,
  NotificationSchema,
  SecuPassKeySchema,
  type Account,
  type Delivery,
  type DeliveryFile,
  type DeliveryRecipient,
  type RecipientState,
  type SecuPassKey,
} from '../store/entities.ts';
import type { AccountService } from './accounts.ts';
import type { SecuPassService } from './secupass.ts';
import { audit } from './audit.ts';
import { actorOf, inTx, readEm, requireScope, type Actor, type CoreDeps, type Em, type Principal, type Via } from './context.ts';
import { fail } from './errors.ts';
import { TransferBudget } from './transfer-budget.ts';
import { Upload } from './uploads.ts';
import { publicLink } from './links.ts';
import { enqueueMail, type MailTemplate, type MailTemplates } from './outbox.ts';
import { hashToken, looksLikeToken, newToken } from './tokens.ts';
import { isUuid, normalizeEmail, validateFileName, validateMessage, validateRelativePath, validateSubject } from './validation.ts';

const DAY = 86_400_000;
const MESSAGE_NAME = 'message.txt';
/** How often a running upload marks its folder delivery active (idle timers and recovery skip it). */
const UPLOAD_HEARTBEAT_MS = 30_000;

/** Recipient states still waiting for something before the delivery can be opened. */
const WAITING: RecipientState[] = ['awaiting_registration', 'awaiting_secupass', 'awaiting_release'];

/** What a caller may see of one file. */
export interface FileView {
  id: string;
  name: string;
  size: number;
  createdAt: string;
}

/** What a caller may see of one recipient. */
export interface RecipientView {
  id: string;
  email: string;
  state: RecipientState;
  key: { fingerprint: string; createdAt: string } | null;
  releasedAt: string | null;
  releasedFingerprint: string | null;
  downloadedAt: string | null;
}

/** What a caller may see of a delivery. */
export interface DeliveryView {
  id: string;
  subject: string;
  level: number;
  state: string;
  origin: string;
  dropFolder: string | null;
  sender: string;
  owner: string;
  createdAt: string;
  sentAt: string | null;
  expiresAt: string;
  hasMessage: boolean;
  files: FileView[];
  /** Every recipient for the sender/owner; only the caller's own row for a recipient. */
  recipients: RecipientView[];
  /** The caller's role in this delivery. */
  role: 'sender' | 'owner' | 'recipient' | 'admin';
}

/** A download: a stream plus what a front-end needs for headers. */
export interface Download {
  stream: Readable;
  /** Exact byte length of `stream` when known before streaming. */
  size: number | undefined;
  /** File name to offer (".pgp" appended for OpenPGP files). */
  fileName: string;
  contentType: string;
  /** True when the stream is an OpenPGP message the client decrypts. */
  encrypted: boolean;
}

/** Input of create(). */
export interface CreateDeliveryInput {
  to?: unknown;
  subject?: unknown;
  message?: unknown;
  level?: unknown;
  expiresInDays?: unknown;
  dropFolder?: unknown;
}

/** Options of beginUpload(). */
export interface BeginUploadOptions {
  /** Length the client declared (Content-Length); checked against the limit before reading. */
  declaredSize?: number;
  /** Stored under a temporary name: listed to its sender, never delivered unless renamed. */
  temp?: boolean;
  /** The file name inside the OpenPGP literal packet (default: the name). */
  literalName?: string;
  kind?: 'file' | 'message';
  /** A lower byte limit than deliveries.maxFileBytes for what is stored (messages). */
  maxBytes?: number;
  /**
   * The body is a whole OpenPGP message encrypted on the sender's device (PKESKs + SEIPDv1):
   * stored as is, its PKESKs become the wraps. `plaintextSize` is the size the sender declares.
   */
  clientEncrypted?: { plaintextSize?: number | undefined };
  /**
   * The sender's client may read this unsent file back for `webdav.readBackSeconds` (WebDAV
   * clients check what they wrote): level 3/4 keep the session key sealed under the KEK until
   * then or until the delivery is sent.
   */
  readBack?: boolean;
  /** The name may be a path inside the delivery (`folder/file`, from the virtual tree). */
  path?: boolean;
  /**
   * Compute the MDC's SHA-1 in the encryption worker with the cipher (default) or in this thread
   * before each chunk moves to the worker. Protocols whose own work is heavy on the main thread
   * (SFTP's SSH decryption) keep the default; HTTP and WebDAV uploads are faster with the
   * hashing here, off the worker that encrypts (the bytes are the same).
   */
  mdcInWorker?: boolean;
  /**
   * Whether other uploads into the same delivery are running: an upload that created the
   * delivery and fails removes it only when this says no (default: nothing else runs).
   */
  othersUploading?: () => Promise<boolean>;
}

/** What a delivery is made of. */
export interface DeliverySpec {
  ownerId: string;
  recipients: string[];
  level: number;
  subject: string;
  expiresInDays: number;
  dropFolder: string | null;
  /** The tree folder it collects files for, if any. */
  folderKey: string | null;
  message?: string | undefined;
}

/** Where an upload goes: an open delivery, or a tree folder's open delivery (created on first use). */
export type UploadTarget = { deliveryId: string } | { folder: DeliverySpec & { folderKey: string } };

/** The delivery process. */
export class DeliveryService {
  private accounts!: AccountService;
  private secupass!: SecuPassService;

  /** Buffer memory shared by every upload of this process (see transfer-budget.ts). */
  private readonly uploadBudget: TransferBudget;

  constructor(private readonly deps: CoreDeps) {
    this.uploadBudget = new TransferBudget(deps.config.server.uploadBufferBytes);
  }

  /** Uploads in progress in this process. */
  get uploadsRunning(): number {
    return this.uploadBudget.uploads;
  }

  /** Wires the services this one calls back into (they call this one too). */
  attach(accounts: AccountService, secupass: SecuPassService): void {
    this.accounts = accounts;
    this.secupass = secupass;
  }

  private now(): Date {
    return this.deps.clock.now();
  }

  private get cfg() {
    return this.deps.config.deliveries;
  }

  private link(path: string, query: Record<string, string> = {}): string {
    return publicLink(this.deps.config.server.publicBaseUrl, path, query);
  }

  private mail<T extends MailTemplate>(em: Em, template: T, to: string, params: MailTemplates[T]): void {
    enqueueMail(em, this.deps.kek, this.now(), template, to, params);
  }

  private notify(em: Em, accountId: string, kind: string, deliveryId: string | null, data: Record<string, unknown>): void {
    em.create(NotificationSchema, { id: randomUUID(), accountId, kind, deliveryId, data, createdAt: this.now() });
  }

  /** The configured drop folder of that name (case-insensitive), or undefined. */
  dropFolder(name: string): DropFolderConfig | undefined {
    return this.deps.config.dropFolders.find((f) => f.name.toLowerCase() === name.toLowerCase());
  }

  // ---------------------------------------------------------------- create

  /**
   * What a delivery is made of, from a request: ad hoc (`to`, `subject`, `level`...) for
   * members; a configured drop folder (`dropFolder`) for its owner, its writers and service
   * accounts the owner is responsible for. Level 3/4 needs an owner with an active SecuPass.
   */
  async resolveSpec(p: Principal, input: CreateDeliveryInput): Promise<DeliverySpec> {
    requireScope(p, 'send');
    const message = validateMessage(input.message, this.cfg.maxMessageBytes);
    let spec: DeliverySpec;
    if (input.dropFolder !== undefined && input.dropFolder !== null) {
      if (typeof input.dropFolder !== 'string') throw fail('SEALDROP_E_VALIDATION', 'dropFolder must be a name');
      const folder = await this.writableDropFolder(p, input.dropFolder);
      spec = { ...folder, message, folderKey: null };
      if (input.subject !== undefined) spec.subject = validateSubject(input.subject, this.cfg.maxSubjectLength);
    } else {
      if (p.role === 'service') throw fail('SEALDROP_E_FORBIDDEN', 'service accounts deliver into drop folders only');
      if (p.role === 'guest') throw fail('SEALDROP_E_FORBIDDEN', 'guests receive deliveries; they do not send them');
      if (!Array.isArray(input.to) || input.to.length === 0) throw fail('SEALDROP_E_VALIDATION', 'to must be a non-empty list of e-mail addresses');
      if (input.to.length > this.cfg.maxRecipients) throw fail('SEALDROP_E_LIMIT', `at most ${this.cfg.maxRecipients} recipients`);
      if (typeof input.level !== 'number' || ![1, 2, 3, 4].includes(input.level)) throw fail('SEALDROP_E_VALIDATION', 'level must be 1, 2, 3 or 4');
      let expiresInDays = this.cfg.defaultExpiryDays;
      if (input.expiresInDays !== undefined && input.expiresInDays !== null) {
        if (typeof input.expiresInDays !== 'number' || !Number.isInteger(input.expiresInDays) || input.expiresInDays < 1 || input.expiresInDays > this.cfg.maxExpiryDays) {
          throw fail('SEALDROP_E_VALIDATION', `expiresInDays must be a whole number from 1 to ${this.cfg.maxExpiryDays}`);
        }
        expiresInDays = input.expiresInDays;
      }
      spec = {
        ownerId: p.accountId,
        recipients: [...new Set(input.to.map((t, i) => normalizeEmail(t, `to[${i}]`)))],
        level: input.level,
        subject: validateSubject(input.subject, this.cfg.maxSubjectLength),
        expiresInDays,
        dropFolder: null,
        folderKey: null,
        message,
      };
    }
    await this.checkSpec(p, spec);
    return spec;
  }

  /** The drop folder `name` as a delivery spec, if the caller may write into it. */
  async writableDropFolder(p: Principal, name: string): Promise<Omit<DeliverySpec, 'message' | 'folderKey'>> {
    const folder = this.dropFolder(name);
    if (!folder) throw fail('SEALDROP_E_NOT_FOUND', `no drop folder ${JSON.stringify(name)}`);
    const em = readEm(this.deps);
    const owner = await em.findOne(AccountSchema, { email: folder.owner });
    if (!owner || owner.state !== 'active') throw fail('SEALDROP_E_WRONG_STATE', `the owner of drop folder ${folder.name} has no active account`);
    if (!(await this.mayWriteDropFolder(p, folder))) throw fail('SEALDROP_E_FORBIDDEN', `you may not write into drop folder ${folder.name}`);
    return {
      ownerId: owner.id,
      recipients: folder.recipients,
      level: folder.level,
      subject: validateSubject(renderSubject(folder.subject, { folder: folder.name }, this.now()), this.cfg.maxSubjectLength),
      expiresInDays: folder.expiresInDays ?? this.cfg.defaultExpiryDays,
      dropFolder: folder.name,
    };
  }

  /** Whether the caller may write into a drop folder: its owner, a listed writer, or a service account of the owner. */
  async mayWriteDropFolder(p: Principal, folder: DropFolderConfig): Promise<boolean> {
    if (!p.scopes.has('send')) return false;
    if (p.email === folder.owner || folder.writers.includes(p.email)) return true;
    if (p.role !== 'service') return false;
    const em = readEm(this.deps);
    const [caller, owner] = await Promise.all([em.findOne(AccountSchema, { id: p.accountId }), em.findOne(AccountSchema, { email: folder.owner })]);
    return Boolean(caller && owner && caller.ownerId === owner.id);
  }

  private async checkSpec(p: Principal, spec: DeliverySpec): Promise<void> {
    const em = readEm(this.deps);
    const existing = await em.find(AccountSchema, { email: { $in: spec.recipients } });
    for (const a of existing) {
      if (a.state === 'disabled') throw fail('SEALDROP_E_VALIDATION', `recipient ${a.email} is disabled`);
      if (a.role === 'service') throw fail('SEALDROP_E_VALIDATION', `recipient ${a.email} is a service account`);
    }
    if (spec.level >= 3 && !(await em.findOne(SecuPassKeySchema, { accountId: spec.ownerId, destroyedAt: null }))) {
      throw fail(
        'SEALDROP_E_SECUPASS_REQUIRED',
        spec.ownerId === p.accountId ? 'activate your SecuPass before sending at level 3 or 4' : 'the drop folder owner has no active SecuPass; level 3/4 uploads are refused',
      );
    }
  }

  /** Inserts an open delivery for `spec` inside the caller's transaction. */
  private async insertOpen(em: Em, p: Principal, spec: DeliverySpec): Promise<Delivery> {
    // Each open delivery is rows that stay until it is sent or discarded: without a bound, one
    // account could make them by the thousand (an SFTP mkdir of a subject subfolder makes one).
    const open = await em.count(DeliverySchema, { senderId: p.accountId, state: 'open' });
    if (open >= this.cfg.maxOpenPerSender) throw fail('SEALDROP_E_LIMIT', `at most ${this.cfg.maxOpenPerSender} unsent deliveries at once; send or discard some first`);
    const now = this.now();
    const id = randomUUID();
    const deliveryKey = spec.level <= 3 ? newKey() : null;
    const d = em.create(DeliverySchema, {
      id,
      senderId: p.accountId,
      ownerId: spec.ownerId,
      subject: spec.subject,
      level: spec.level,
      state: 'open',
      messageCipher: spec.message !== undefined && deliveryKey ? sealMessage(deliveryKey, spec.message, id) : null,
      hasMessage: spec.message !== undefined,
      deliveryKey: deliveryKey ? this.deps.kek.seal('delivery-key', deliveryKey, id) : null,
      dropFolder: spec.dropFolder,
      folderKey: spec.folderKey,
      lastActivityAt: now,
      origin: p.via,
      createdAt: now,
      expiresAt: new Date(now.getTime() + spec.expiresInDays * DAY),
      expiresInDays: spec.expiresInDays,
    });
    const accounts = await em.find(AccountSchema, { email: { $in: spec.recipients } });
    for (const email of spec.recipients) {
      em.create(DeliveryRecipientSchema, { id: randomUUID(), deliveryId: id, email, accountId: accounts.find((a) => a.email === email)?.id ?? null, state: 'pending', updatedAt: now });
    }
    await audit(em, { action: 'delivery.created', actor: actorOf(p), targetType: 'delivery', targetId: id, data: { level: spec.level, recipients: spec.recipients, dropFolder: spec.dropFolder, folder: spec.folderKey, via: p.via } }, now);
    return d;
  }

  /** Creates an open delivery (HTTP API). A level-4 message is encrypted at once like a file. */
  async create(p: Principal, input: CreateDeliveryInput): Promise<DeliveryView> {
    const spec = await this.resolveSpec(p, input);
    const delivery = await inTx(this.deps, (em) => this.insertOpen(em, p, spec));
    if (spec.message !== undefined && spec.level === 4) {
      try {
        const upload = await this.beginUpload(p, { deliveryId: delivery.id }, MESSAGE_NAME, { kind: 'message' });
        await upload.fromStream(Readable.from([Buffer.from(spec.message, 'utf8')]));
      } catch (err) {
        await this.discardOpen(delivery.id);
        throw err;
      }
    }
    this.deps.events.emit('delivery.created', { deliveryId: delivery.id, level: spec.level, via: p.via });
    return this.get(p, delivery.id);
  }

  /**
   * The open delivery collecting a tree folder's files (`folder.folderKey`), created on first
   * use. Returns whether this call created it.
   */
  async ensureFolderDelivery(p: Principal, spec: DeliverySpec & { folderKey: string }): Promise<{ delivery: Delivery; created: boolean }> {
    const existing = await readEm(this.deps).findOne(DeliverySchema, { senderId: p.accountId, folderKey: spec.folderKey, state: 'open' });
    if (existing) return { delivery: existing, created: false };
    await this.checkSpec(p, spec);
    try {
      const result = await inTx(this.deps, async (em) => {
        const again = await em.findOne(DeliverySchema, { senderId: p.accountId, folderKey: spec.folderKey, state: 'open' });
        if (again) return { delivery: again, created: false };
        const delivery = await this.insertOpen(em, p, spec);
        return { delivery, created: true };
      });
      if (result.created) this.deps.events.emit('delivery.created', { deliveryId: result.delivery.id, level: spec.level, via: p.via });
      return result;
    } catch (err) {
      // Another instance created it at the same moment (partial unique index).
      const raced = await readEm(this.deps).findOne(DeliverySchema, { senderId: p.accountId, folderKey: spec.folderKey, state: 'open' });
      if (raced) return { delivery: raced, created: false };
      throw err;
    }
  }

  /** The caller's open delivery of a tree folder, or null. */
  async folderDelivery(p: Principal, folderKey: string): Promise<Delivery | null> {
    return readEm(this.deps).findOne(DeliverySchema, { senderId: p.accountId, folderKey, state: 'open' });
  }

  /** Deletes an open delivery that holds no file (a folder whose only upload failed, an empty subfolder). */
  async discardIfEmpty(deliveryId: string): Promise<boolean> {
    return inTx(this.deps, async (em) => {
      if ((await em.count(DeliveryFileSchema, { deliveryId })) > 0) return false;
      return (await em.nativeDelete(DeliverySchema, { id: deliveryId, state: 'open' })) > 0;
    });
  }

  private async discardOpen(id: string): Promise<void> {
    const em = readEm(this.deps);
    const files = await em.find(DeliveryFileSchema, { deliveryId: id });
    await inTx(this.deps, (tem) => tem.nativeDelete(DeliverySchema, { id, state: 'open' }));
    for (const f of files) if (f.blobKey) await this.deps.blobs.delete(f.blobKey);
  }

  // ---------------------------------------------------------------- files

  /**
   * Adds a file to an open delivery from a stream (HTTP PUT): see beginUpload. On any failure
   * (client abort, size limit, state change meanwhile) nothing of the file remains.
   */
  async addFile(p: Principal, deliveryId: string, nameInput: unknown, body: Readable, options: BeginUploadOptions = {}): Promise<FileView> {
    const upload = await this.beginUpload(p, { deliveryId }, nameInput, options);
    return fileView(await upload.fromStream(body));
  }

  /**
   * Stores the message of an open level-4 delivery encrypted on the sender's device: an
   * OpenPGP message (PKESKs for the owner and active recipients + SEIPDv1) like a
   * client-encrypted file, replacing a message given before. The server never sees its text.
   */
  async addClientMessage(p: Principal, deliveryId: string, body: Readable, options: { declaredSize?: number; plaintextSize?: number } = {}): Promise<void> {
    const d = await this.loadForSender(readEm(this.deps), p, deliveryId);
    if (d.level !== 4) throw fail('SEALDROP_E_WRONG_STATE', 'only level-4 messages are encrypted on the client; give the message when creating the delivery');
    const limit = this.cfg.maxMessageBytes;
    if ((options.plaintextSize ?? 0) > limit) throw fail('SEALDROP_E_TOO_LARGE', `the message exceeds the limit of ${limit} bytes`);
    // Ciphertext = message + a few hundred bytes of packets per key; bound it generously, also
    // for a body without Content-Length.
    const cipherLimit = limit + 64 * 1024;
    if ((options.declaredSize ?? 0) > cipherLimit) throw fail('SEALDROP_E_TOO_LARGE', `the message exceeds the limit of ${limit} bytes`);
    const upload = await this.beginUpload(p, { deliveryId }, MESSAGE_NAME, { kind: 'message', maxBytes: cipherLimit, clientEncrypted: { plaintextSize: options.plaintextSize } });
    await upload.fromStream(body);
  }

  /**
   * Starts a file upload into an open delivery, or into a tree folder's open delivery (created
   * on first use). Level 3/4: a fresh session key, SEIPDv1 as it streams, wraps for the
   * owner's key and every recipient key active now. Levels 1/2: SEIPDv2 under the delivery
   * key. On completion a file of the same name is replaced; `temp` files are never delivered.
   */
  async beginUpload(p: Principal, target: UploadTarget, nameInput: unknown, options: BeginUploadOptions = {}): Promise<Upload<DeliveryFile>> {
    requireScope(p, 'send');
    const name = options.path ? validateRelativePath(nameInput) : validateFileName(nameInput);
    const kind = options.kind ?? 'file';
    const temp = options.temp ?? false;
    if (options.declaredSize !== undefined && options.declaredSize > this.cfg.maxFileBytes) {
      throw fail('SEALDROP_E_TOO_LARGE', `the file exceeds the limit of ${this.cfg.maxFileBytes} bytes`);
    }
    let delivery: Delivery;
    let created = false;
    if ('deliveryId' in target) {
      delivery = await this.loadForSender(readEm(this.deps), p, target.deliveryId);
      if (delivery.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', `delivery is ${delivery.state}; files can only be added before it is sent`);
    } else {
      ({ delivery, created } = await this.ensureFolderDelivery(p, target.folder));
    }
    const em0 = readEm(this.deps);
    if (kind === 'file' && !temp) {
      const count = await em0.count(DeliveryFileSchema, { deliveryId: delivery.id, kind: 'file', temp: false, name: { $ne: name } });
      if (count >= this.cfg.maxFilesPerDelivery) throw fail('SEALDROP_E_LIMIT', `at most ${this.cfg.maxFilesPerDelivery} files per delivery`);
    }
    if (kind === 'file') await this.assertPathFree(em0, delivery.id, name);
    const literalName = options.literalName ?? (name.split('/').pop() as string);
    const readBackSeconds = options.readBack && !options.clientEncrypted ? this.deps.config.webdav.readBackSeconds : 0;
    let readBackKey: Buffer | null = null;
    let wraps: Array<{ keyId: string; pkesk: Uint8Array }> = [];
    let clientWraps: (() => Promise<Array<{ keyId: string; pkesk: Uint8Array }>>) | undefined;
    const deliveryId = delivery.id;
    let stored = false;
    // This upload's share of the buffer memory all uploads share (given back in `finished`).
    const share = this.uploadBudget.enter();
    let upload: Upload<DeliveryFile>;
    try {
      let encrypt: (plain: Readable) => Promise<Readable> | Readable;
      let staging: StagingSource | undefined;
      if (options.clientEncrypted) {
        // Encrypted on the sender's device: store the data packet as is, the PKESKs as wraps.
        if (delivery.level < 3) throw fail('SEALDROP_E_WRONG_STATE', 'levels 1 and 2 are encrypted by the server: upload the plain file');
        const size = options.clientEncrypted.plaintextSize;
        if (size !== undefined && (!Number.isSafeInteger(size) || size < 0 || size > this.cfg.maxFileBytes)) throw fail('SEALDROP_E_VALIDATION', 'the plaintext size is not valid');
        const splitter = new MessageSplitter();
        encrypt = (cipher) => pipeline(cipher, splitter, () => undefined);
        clientWraps = async () => this.wrapsFromClient(readEm(this.deps), delivery, await splitter.pkesks());
      } else if (delivery.level >= 3) {
        const sessionKey = newKey();
        const keys = await this.keysForUpload(em0, delivery);
        wraps = await Promise.all(keys.map(async (k) => ({ keyId: k.id, pkesk: await wrapSessionKey(sessionKey, k.publicKey) })));
        const seipd = { sessionKey, filename: literalName };
        const encryptor = this.deps.encryptPool ? this.deps.encryptPool.createEncryptor(seipd, options.mdcInWorker ?? true, () => share.bytes / 2) : createSeipdV1Encryptor(seipd);
        if (readBackSeconds > 0) readBackKey = Buffer.from(sessionKey);
        sessionKey.fill(0);
        encrypt = (plain) => pipeline(plain, encryptor, () => undefined);
        staging = this.deps.encryptPool?.staging;
      } else {
        const key = this.deliveryKey(delivery);
        encrypt = (plain) => encryptSeipdV2(plain, key, literalName);
      }
      upload = await Upload.start<DeliveryFile>({
        holdBytes: () => share.bytes,
        staging,
        blobs: this.deps.blobs,
        maxBytes: Math.min(this.cfg.maxFileBytes, options.maxBytes ?? Number.MAX_SAFE_INTEGER),
        encrypt,
        commit: async ({ bytes, blobKey, blob }) => {
          if (clientWraps) wraps = await clientWraps();
          const plainSize = options.clientEncrypted ? (options.clientEncrypted.plaintextSize ?? bytes) : bytes;
          const now = this.now();
          let replaced: string | null = null;
          const file = await inTx(this.deps, async (em) => {
            const d = await em.findOne(DeliverySchema, { id: deliveryId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
            if (!d || d.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', 'the delivery was sent, revoked or expired during the upload');
            if (kind === 'file') await this.assertPathFree(em, d.id, name);
            const old = await em.findOne(DeliveryFileSchema, { deliveryId: d.id, kind, name });
            if (old) {
              replaced = old.blobKey ?? null;
              await em.nativeDelete(DeliveryFileSchema, { id: old.id });
            }
            const id = randomUUID();
            const readback = readBackSeconds > 0 ? { readbackKey: readBackKey ? this.deps.kek.seal('readback', readBackKey, id) : null, readbackUntil: new Date(now.getTime() + readBackSeconds * 1000) } : {};
            const file = em.create(DeliveryFileSchema, { id, deliveryId: d.id, kind, name, size: plainSize, blobKey, blobSize: blob.size, temp, createdAt: now, ...readback });
            await this.insertWraps(em, file.id, wraps);
            d.lastActivityAt = now;
            if (kind === 'message') d.hasMessage = true;
            await audit(em, { action: kind === 'file' ? 'file.added' : 'message.added', actor: actorOf(p), targetType: 'delivery', targetId: d.id, data: { fileId: file.id, name: kind === 'file' ? name : undefined, size: plainSize, temp, replaced: Boolean(old), clientEncrypted: Boolean(options.clientEncrypted) } }, now);
            return file;
          });
          if (replaced) await this.deps.blobs.delete(replaced);
          this.deps.events.emit('file.stored', { deliveryId, fileId: file.id, bytes: plainSize, via: p.via });
          stored = true;
          return file;
        },
        discarded: async () => {
          if (created && !(await options.othersUploading?.())) await this.discardIfEmpty(deliveryId);
        },
        finished: () => {
          share.leave();
          if (heartbeat) clearInterval(heartbeat);
          readBackKey?.fill(0);
          this.deps.events.emit('upload.finished', { via: p.via, ok: stored });
        },
      });
    } catch (err) {
      share.leave();
      readBackKey?.fill(0);
      throw err;
    }
    // A folder delivery stays "active" while an upload runs, so no instance's idle timer sends
    // it (or recovery discards it) in the middle of a long transfer.
    const heartbeat = delivery.folderKey
      ? setInterval(() => {
          inTx(this.deps, (em) => em.nativeUpdate(DeliverySchema, { id: deliveryId, state: 'open' }, { lastActivityAt: this.now() })).catch((err: unknown) =>
            this.deps.log.warn({ err, deliveryId }, 'could not mark the folder delivery active'),
          );
        }, UPLOAD_HEARTBEAT_MS)
      : undefined;
    heartbeat?.unref();
    this.deps.events.emit('upload.started', { via: p.via });
    return upload;
  }

  /**
   * The public keys a client encrypts a file of this open level 3/4 delivery to: the owner's
   * and those of recipients whose SecuPass is active now (the others get the file by release).
   */
  async encryptionKeys(p: Principal, deliveryId: string): Promise<Array<{ email: string; role: 'owner' | 'recipient'; fingerprint: string; publicKey: string }>> {
    requireScope(p, 'send');
    const em = readEm(this.deps);
    const d = await this.loadForSender(em, p, deliveryId);
    if (d.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', `delivery is ${d.state}`);
    if (d.level < 3) throw fail('SEALDROP_E_WRONG_STATE', 'levels 1 and 2 are encrypted by the server');
    const keys = await this.keysForUpload(em, d);
    const accounts = await em.find(AccountSchema, { id: { $in: keys.map((k) => k.accountId) } });
    return keys.map((k) => ({
      email: accounts.find((a) => a.id === k.accountId)?.email ?? '',
      role: k.accountId === d.ownerId ? ('owner' as const) : ('recipient' as const),
      fingerprint: k.fingerprint,
      publicKey: k.publicKey,
    }));
  }

  /**
   * Maps the PKESKs of a client-encrypted file to SecuPass keys: each must be addressed to the
   * owner's active key or an active key of a recipient, and one must be the owner's (release and
   * re-release need it).
   */
  private async wrapsFromClient(em: Em, delivery: Delivery, pkesks: Uint8Array[]): Promise<Array<{ keyId: string; pkesk: Uint8Array }>> {
    const keys = await this.keysForUpload(em, delivery);
    const out: Array<{ keyId: string; pkesk: Uint8Array }> = [];
    for (const pkesk of pkesks) {
      let keyId: string;
      try {
        keyId = parsePkesk(pkesk).keyId;
      } catch (err) {
        throw fail('SEALDROP_E_WRAP_INVALID', `a session-key packet is not valid: ${(err as Error).message}`);
      }
      const key = keys.find((k) => k.encryptionKeyId === keyId);
      if (!key) throw fail('SEALDROP_E_WRAP_INVALID', `a session-key packet is addressed to key ${keyId}, which is neither the owner's nor an active recipient's`);
      if (!out.some((w) => w.keyId === key.id)) out.push({ keyId: key.id, pkesk });
    }
    if (!out.some((w) => keys.find((k) => k.id === w.keyId)?.accountId === delivery.ownerId)) {
      throw fail('SEALDROP_E_WRAP_INVALID', "the file must also be encrypted to the owner's key");
    }
    return out;
  }

  /** Keys to wrap a new file to: the owner's, and every recipient's that is active now. */
  private async keysForUpload(em: Em, delivery: Delivery): Promise<SecuPassKey[]> {
    const recipients = await em.find(DeliveryRecipientSchema, { deliveryId: delivery.id, accountId: { $ne: null } });
    const accountIds = [delivery.ownerId, ...recipients.map((r) => r.accountId as string)];
    const keys = await em.find(SecuPassKeySchema, { accountId: { $in: accountIds }, destroyedAt: null });
    if (!keys.some((k) => k.accountId === delivery.ownerId)) throw fail('SEALDROP_E_SECUPASS_REQUIRED', 'the owner of this delivery has no active SecuPass');
    return keys;
  }

  /**
   * Inserts wraps, each only if its key is still active at this moment: the key rows are read
   * with a share lock, so a concurrent reset (which updates them) waits for this transaction,
   * then deletes what it committed — no wrap to a destroyed key survives.
   */
  private async insertWraps(em: Em, fileId: string, wraps: Array<{ keyId: string; pkesk: Uint8Array }>): Promise<string[]> {
    if (wraps.length === 0) return [];
    const keys = await em.find(SecuPassKeySchema, { id: { $in: wraps.map((w) => w.keyId) } }, { lockMode: LockMode.PESSIMISTIC_READ });
    const active = new Set(keys.filter((k) => !k.destroyedAt).map((k) => k.id));
    const existing = new Set((await em.find(KeyWrapSchema, { fileId, keyId: { $in: [...active] } })).map((w) => w.keyId));
    const added: string[] = [];
    for (const w of wraps) {
      if (!active.has(w.keyId) || existing.has(w.keyId)) continue;
      em.create(KeyWrapSchema, { id: randomUUID(), fileId, keyId: w.keyId, pkesk: Buffer.from(w.pkesk), createdAt: this.now() });
      existing.add(w.keyId);
      added.push(w.keyId);
    }
    return added;
  }

  /** Removes a file from an open delivery. */
  async removeFile(p: Principal, deliveryId: string, fileId: string): Promise<void> {
    requireScope(p, 'send');
    let blobKey: string | null = null;
    await inTx(this.deps, async (em) => {
      const d = await this.loadForSender(em, p, deliveryId);
      if (d.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', 'files can only be removed before the delivery is sent');
      const file = isUuid(fileId) ? await em.findOne(DeliveryFileSchema, { id: fileId, deliveryId, kind: 'file' }) : null;
      if (!file) throw fail('SEALDROP_E_NOT_FOUND', 'no such file');
      blobKey = file.blobKey ?? null;
      await em.nativeDelete(DeliveryFileSchema, { id: file.id });
      await audit(em, { action: 'file.removed', actor: actorOf(p), targetType: 'delivery', targetId: d.id, data: { fileId } }, this.now());
    });
    if (blobKey) await this.deps.blobs.delete(blobKey);
  }

  /** Renames a file of an open delivery (replacing a file of the new name), marking it temporary or final. */
  async renameFile(p: Principal, deliveryId: string, fileId: string, newNameInput: unknown, temp: boolean): Promise<void> {
    requireScope(p, 'send');
    const name = validateRelativePath(newNameInput);
    let replacedBlob: string | null = null;
    await inTx(this.deps, async (em) => {
      const d = await this.loadForSender(em, p, deliveryId, LockMode.PESSIMISTIC_WRITE);
      if (d.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', 'files can only be renamed before the delivery is sent');
      const file = await em.findOne(DeliveryFileSchema, { id: fileId, deliveryId, kind: 'file' });
      if (!file) throw fail('SEALDROP_E_NOT_FOUND', 'no such file');
      if (file.name === name && file.temp === temp) return;
      await this.assertPathFree(em, deliveryId, name);
      const other = await em.findOne(DeliveryFileSchema, { deliveryId, kind: 'file', name, id: { $ne: file.id } });
      if (other) {
        replacedBlob = other.blobKey ?? null;
        await em.nativeDelete(DeliveryFileSchema, { id: other.id });
      }
      if (!temp && file.temp) {
        const count = await em.count(DeliveryFileSchema, { deliveryId, kind: 'file', temp: false });
        if (count >= this.cfg.maxFilesPerDelivery) throw fail('SEALDROP_E_LIMIT', `at most ${this.cfg.maxFilesPerDelivery} files per delivery`);
      }
      const from = file.name;
      file.name = name;
      file.temp = temp;
      d.lastActivityAt = this.now();
      await audit(em, { action: 'file.renamed', actor: actorOf(p), targetType: 'delivery', targetId: d.id, data: { fileId, from, to: name, temp, replaced: Boolean(other) } }, this.now());
    });
    if (replacedBlob) await this.deps.blobs.delete(replacedBlob);
  }

  // ---------------------------------------------------------------- folders inside a delivery

  /**
   * Refuses a file path whose folders are files, or where a folder stands: inside one delivery
   * `a/b` cannot be a file if `a` is one, nor if `a/b/` holds anything.
   */
  private async assertPathFree(em: Em, deliveryId: string, rel: string): Promise<void> {
    const parts = rel.split('/');
    const ancestors = parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
    if (ancestors.length && (await em.count(DeliveryFileSchema, { deliveryId, kind: 'file', name: { $in: ancestors } })) > 0) {
      throw fail('SEALDROP_E_CONFLICT', 'a folder on that path is a file');
    }
    if ((await em.count(DeliveryFileSchema, { deliveryId, kind: 'dir', name: rel })) > 0) throw fail('SEALDROP_E_CONFLICT', 'a folder of that name exists');
    if ((await this.rowsUnder(em, deliveryId, rel)).length > 0) throw fail('SEALDROP_E_CONFLICT', 'a folder of that name exists');
  }

  /** Rows (files and folders) strictly inside folder `rel` of an open delivery. */
  private async rowsUnder(em: Em, deliveryId: string, rel: string): Promise<DeliveryFile[]> {
    // Names may hold % and _, so the prefix is matched here rather than with LIKE; a delivery
    // holds at most maxFilesPerDelivery files.
    const rows = await em.find(DeliveryFileSchema, { deliveryId, kind: { $in: ['file', 'dir'] } });
    return rows.filter((r) => r.name.startsWith(`${rel}/`));
  }

  /** The files and folders of an open delivery (sender only), by path. */
  async folderEntries(p: Principal, deliveryId: string): Promise<DeliveryFile[]> {
    const em = readEm(this.deps);
    const d = await this.loadForSender(em, p, deliveryId);
    return em.find(DeliveryFileSchema, { deliveryId: d.id, kind: { $in: ['file', 'dir'] } }, { orderBy: { name: 'asc' } });
  }

  /** Discards an open tree delivery with all its files (a subject subfolder deleted by its sender). */
  async discardFolder(p: Principal, deliveryId: string): Promise<void> {
    requireScope(p, 'send');
    const em = readEm(this.deps);
    const d = await this.loadForSender(em, p, deliveryId);
    if (d.state !== 'open' || !d.folderKey) throw fail('SEALDROP_E_WRONG_STATE', 'only an unsent folder can be removed');
    await inTx(this.deps, (tem) => audit(tem, { action: 'folder.discarded', actor: actorOf(p), targetType: 'delivery', targetId: d.id, data: { folder: d.folderKey } }, this.now()));
    await this.discardOpen(d.id);
  }

  /** Renames an open tree delivery's folder (a subject subfolder): new folder key and subject. */
  async renameFolder(p: Principal, deliveryId: string, folderKey: string, subject: string): Promise<void> {
    requireScope(p, 'send');
    await inTx(this.deps, async (em) => {
      const d = await this.loadForSender(em, p, deliveryId, LockMode.PESSIMISTIC_WRITE);
      if (d.state !== 'open' || !d.folderKey) throw fail('SEALDROP_E_WRONG_STATE', 'only an unsent folder can be renamed');
      if (await em.findOne(DeliverySchema, { senderId: p.accountId, folderKey, state: 'open' })) throw fail('SEALDROP_E_CONFLICT', 'the destination exists');
      const from = d.folderKey;
      d.folderKey = folderKey;
      d.subject = subject;
      d.lastActivityAt = this.now();
      await audit(em, { action: 'folder.renamed', actor: actorOf(p), targetType: 'delivery', targetId: d.id, data: { from, to: folderKey } }, this.now());
    });
  }

  /** Makes folder `rel` inside an open delivery (its parent must exist). */
  async makeDir(p: Principal, deliveryId: string, relInput: string): Promise<void> {
    requireScope(p, 'send');
    const rel = validateRelativePath(relInput);
    await inTx(this.deps, async (em) => {
      const d = await this.loadForSender(em, p, deliveryId, LockMode.PESSIMISTIC_WRITE);
      if (d.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', 'folders can only be made before the delivery is sent');
      if ((await em.count(DeliveryFileSchema, { deliveryId, kind: { $in: ['file', 'dir'] }, name: rel })) > 0) throw fail('SEALDROP_E_CONFLICT', 'the name exists');
      await this.assertPathFree(em, deliveryId, rel);
      const count = await em.count(DeliveryFileSchema, { deliveryId, kind: { $in: ['file', 'dir'] } });
      if (count >= 2 * this.cfg.maxFilesPerDelivery) throw fail('SEALDROP_E_LIMIT', 'too many files and folders in this delivery');
      const now = this.now();
      em.create(DeliveryFileSchema, { id: randomUUID(), deliveryId, kind: 'dir', name: rel, size: 0, blobKey: null, blobSize: 0, temp: false, createdAt: now });
      d.lastActivityAt = now;
      await audit(em, { action: 'folder.created', actor: actorOf(p), targetType: 'delivery', targetId: d.id, data: { name: rel } }, now);
    });
  }

  /** Removes folder `rel` of an open delivery with everything in it; `onlyIfEmpty` refuses a non-empty one. */
  async removeDir(p: Principal, deliveryId: string, relInput: string, onlyIfEmpty: boolean): Promise<void> {
    requireScope(p, 'send');
    const rel = validateRelativePath(relInput);
    const blobs: string[] = [];
    await inTx(this.deps, async (em) => {
      const d = await this.loadForSender(em, p, deliveryId, LockMode.PESSIMISTIC_WRITE);
      if (d.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', 'folders can only be removed before the delivery is sent');
      const inside = await this.rowsUnder(em, deliveryId, rel);
      const own = await em.find(DeliveryFileSchema, { deliveryId, kind: 'dir', name: rel });
      if (own.length === 0 && inside.length === 0) throw fail('SEALDROP_E_NOT_FOUND', 'no such folder');
      if (onlyIfEmpty && inside.length > 0) throw fail('SEALDROP_E_WRONG_STATE', 'the folder is not empty');
      const rows = [...own, ...inside];
      await em.nativeDelete(DeliveryFileSchema, { id: { $in: rows.map((r) => r.id) } });
      blobs.push(...rows.map((r) => r.blobKey).filter((k): k is string => Boolean(k)));
      d.lastActivityAt = this.now();
      await audit(em, { action: 'folder.removed', actor: actorOf(p), targetType: 'delivery', targetId: d.id, data: { name: rel, files: rows.filter((r) => r.kind === 'file').length } }, this.now());
    });
    for (const key of blobs) await this.deps.blobs.delete(key);
  }

  /**
   * Moves a file or folder to another path inside the same open delivery. An existing target is
   * replaced only with `overwrite` (else SEALDROP_E_CONFLICT); returns whether one was.
   */
  async movePath(p: Principal, deliveryId: string, fromInput: string, toInput: string, overwrite: boolean, temp?: (name: string) => boolean): Promise<boolean> {
    requireScope(p, 'send');
    const from = validateRelativePath(fromInput);
    const to = validateRelativePath(toInput);
    if (to === from) throw fail('SEALDROP_E_FORBIDDEN', 'the source and the destination are the same');
    if (to.startsWith(`${from}/`)) throw fail('SEALDROP_E_FORBIDDEN', 'a folder cannot be moved into itself');
    const blobs: string[] = [];
    let replaced = false;
    await inTx(this.deps, async (em) => {
      const d = await this.loadForSender(em, p, deliveryId, LockMode.PESSIMISTIC_WRITE);
      if (d.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', 'files can only be moved before the delivery is sent');
      const source = [...(await em.find(DeliveryFileSchema, { deliveryId, kind: { $in: ['file', 'dir'] }, name: from })), ...(await this.rowsUnder(em, deliveryId, from))];
      if (source.length === 0) throw fail('SEALDROP_E_NOT_FOUND', 'no such file or folder');
      replaced = await this.clearTarget(em, deliveryId, to, overwrite, blobs);
      const now = this.now();
      for (const row of source) {
        const name = row.name === from ? to : `${to}${row.name.slice(from.length)}`;
        validateRelativePath(name);
        row.name = name;
        if (row.kind === 'file' && temp) row.temp = temp(name.split('/').pop() as string);
      }
      const files = await em.count(DeliveryFileSchema, { deliveryId, kind: 'file', temp: false, id: { $nin: source.map((r) => r.id) } });
      if (files + source.filter((r) => r.kind === 'file' && !r.temp).length > this.cfg.maxFilesPerDelivery) throw fail('SEALDROP_E_LIMIT', `at most ${this.cfg.maxFilesPerDelivery} files per delivery`);
      d.lastActivityAt = now;
      await audit(em, { action: 'file.moved', actor: actorOf(p), targetType: 'delivery', targetId: d.id, data: { from, to, items: source.length, replaced } }, now);
    });
    for (const key of blobs) await this.deps.blobs.delete(key);
    return replaced;
  }

  /**
   * Makes room for a move or copy to `to`: whatever stands there (a file, or a folder with its
   * contents) is deleted if `overwrite`, else SEALDROP_E_CONFLICT; the blobs to delete after the
   * transaction are added to `blobs`. Returns whether anything was replaced.
   */
  private async clearTarget(em: Em, deliveryId: string, to: string, overwrite: boolean, blobs: string[]): Promise<boolean> {
    const target = [...(await em.find(DeliveryFileSchema, { deliveryId, kind: { $in: ['file', 'dir'] }, name: to })), ...(await this.rowsUnder(em, deliveryId, to))];
    await this.assertParentsNotFiles(em, deliveryId, to);
    if (target.length === 0) return false;
    if (!overwrite) throw fail('SEALDROP_E_CONFLICT', 'the destination exists');
    await em.nativeDelete(DeliveryFileSchema, { id: { $in: target.map((r) => r.id) } });
    blobs.push(...target.map((r) => r.blobKey).filter((k): k is string => Boolean(k)));
    return true;
  }

  private async assertParentsNotFiles(em: Em, deliveryId: string, rel: string): Promise<void> {
    const parts = rel.split('/');
    const ancestors = parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
    if (ancestors.length && (await em.count(DeliveryFileSchema, { deliveryId, kind: 'file', name: { $in: ancestors } })) > 0) {
      throw fail('SEALDROP_E_CONFLICT', 'a folder on that path is a file');
    }
  }

  /**
   * Copies a file or folder (with `depth0` only the folder itself) to another path inside the
   * same open delivery. Each copied file gets its own copy of the ciphertext and of its wraps
   * (same session key, same content). An existing target is replaced only with `overwrite`.
   */
  async copyPath(p: Principal, deliveryId: string, fromInput: string, toInput: string, overwrite: boolean, depth0 = false): Promise<boolean> {
    requireScope(p, 'send');
    const from = validateRelativePath(fromInput);
    const to = validateRelativePath(toInput);
    if (to === from) throw fail('SEALDROP_E_FORBIDDEN', 'the source and the destination are the same');
    if (to.startsWith(`${from}/`)) throw fail('SEALDROP_E_FORBIDDEN', 'a folder cannot be copied into itself');
    const em0 = readEm(this.deps);
    const d = await this.loadForSender(em0, p, deliveryId);
    if (d.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', 'files can only be copied before the delivery is sent');
    const top = await em0.find(DeliveryFileSchema, { deliveryId, kind: { $in: ['file', 'dir'] }, name: from });
    const inside = await this.rowsUnder(em0, deliveryId, from);
    if (top.length === 0 && inside.length === 0) throw fail('SEALDROP_E_NOT_FOUND', 'no such file or folder');
    const isDir = top.length === 0 || top[0]?.kind === 'dir';
    const source = isDir ? [{ kind: 'dir', name: from } as DeliveryFile, ...(depth0 ? [] : inside)] : top;
    // The ciphertext is copied before the transaction; a failure removes the copies.
    const copies = new Map<string, { blobKey: string; blobSize: number }>();
    try {
      for (const row of source) {
        if (row.kind !== 'file' || !row.blobKey) continue;
        const blobKey = randomBytes(16).toString('hex');
        const info = await this.deps.blobs.put(blobKey, await this.deps.blobs.get(row.blobKey));
        if (info.size !== row.blobSize) throw fail('SEALDROP_E_INTERNAL', 'a stored file has not the size it was recorded with');
        copies.set(row.id, { blobKey, blobSize: info.size });
      }
      const blobs: string[] = [];
      let replaced = false;
      await inTx(this.deps, async (em) => {
        const dl = await this.loadForSender(em, p, deliveryId, LockMode.PESSIMISTIC_WRITE);
        if (dl.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', 'files can only be copied before the delivery is sent');
        replaced = await this.clearTarget(em, deliveryId, to, overwrite, blobs);
        const files = await em.count(DeliveryFileSchema, { deliveryId, kind: 'file', temp: false });
        if (files + source.filter((r) => r.kind === 'file' && !r.temp).length > this.cfg.maxFilesPerDelivery) throw fail('SEALDROP_E_LIMIT', `at most ${this.cfg.maxFilesPerDelivery} files per delivery`);
        const now = this.now();
        for (const row of source) {
          const name = row.name === from ? to : `${to}${row.name.slice(from.length)}`;
          const id = randomUUID();
          if (row.kind === 'dir') {
            em.create(DeliveryFileSchema, { id, deliveryId, kind: 'dir', name, size: 0, blobKey: null, blobSize: 0, temp: false, createdAt: now });
            continue;
          }
          const copy = copies.get(row.id);
          // The copy keeps what is left of the original's read-back window.
          const open = row.readbackUntil !== null && row.readbackUntil !== undefined && row.readbackUntil.getTime() > now.getTime();
          const readbackKey = open && row.readbackKey ? this.resealReadback(row, id) : null;
          const readbackUntil = open && (readbackKey || d.level < 3) ? row.readbackUntil : null;
          em.create(DeliveryFileSchema, { id, deliveryId, kind: 'file', name, size: row.size, blobKey: copy?.blobKey ?? null, blobSize: copy?.blobSize ?? 0, temp: row.temp, createdAt: now, readbackKey, readbackUntil });
          const wraps = await em.find(KeyWrapSchema, { fileId: row.id });
          for (const w of wraps) em.create(KeyWrapSchema, { id: randomUUID(), fileId: id, keyId: w.keyId, pkesk: Buffer.from(w.pkesk), createdAt: now });
        }
        dl.lastActivityAt = now;
        await audit(em, { action: 'file.copied', actor: actorOf(p), targetType: 'delivery', targetId: dl.id, data: { from, to, items: source.length, replaced } }, now);
      });
      for (const key of blobs) await this.deps.blobs.delete(key);
      return replaced;
    } catch (err) {
      for (const c of copies.values()) await this.deps.blobs.delete(c.blobKey);
      throw err;
    }
  }

  private resealReadback(row: DeliveryFile, newId: string): Buffer {
    const key = this.deps.kek.open('readback', row.readbackKey as Uint8Array, row.id);
    try {
      return this.deps.kek.seal('readback', key, newId);
    } finally {
      key.fill(0);
    }
  }

  private deliveryKey(d: Delivery): Buffer {
    if (!d.deliveryKey) throw fail('SEALDROP_E_INTERNAL', 'delivery has no delivery key');
    return this.deps.kek.open('delivery-key', d.deliveryKey, d.id);
  }

  // ---------------------------------------------------------------- send

  /**
   * Sends an open delivery: recipients without an account are invited, each recipient gets the
   * state its account allows (level 3/4 available at once where every item is wrapped to an
   * active key), and one mail per recipient goes out.
   */
  async send(p: Principal, deliveryId: string): Promise<DeliveryView> {
    requireScope(p, 'send');
    const now = this.now();
    const actor = actorOf(p);
    let recipientCount = 0;
    const tempBlobs: string[] = [];
    await inTx(this.deps, async (em) => {
      const d = await this.loadForSender(em, p, deliveryId, LockMode.PESSIMISTIC_WRITE);
      if (d.state !== 'open') throw fail('SEALDROP_E_WRONG_STATE', `delivery is ${d.state}, not open`);
      const all = await em.find(DeliveryFileSchema, { deliveryId: d.id });
      // Folders are structure only: a sent delivery keeps them in its files' paths.
      const dirs = all.filter((f) => f.kind === 'dir');
      if (dirs.length) await em.nativeDelete(DeliveryFileSchema, { id: { $in: dirs.map((f) => f.id) } });
      const items = all.filter((f) => !f.temp && f.kind !== 'dir');
      if (!items.some((f) => f.kind === 'file') && !d.hasMessage) throw fail('SEALDROP_E_WRONG_STATE', 'add at least one file or a message before sending');
      // Files still under a temporary name (interrupted client-side renames, editor noise) are never delivered.
      const temps = all.filter((f) => f.temp && f.kind !== 'dir');
      if (temps.length) {
        await em.nativeDelete(DeliveryFileSchema, { id: { $in: temps.map((f) => f.id) } });
        tempBlobs.push(...temps.map((f) => f.blobKey).filter((k): k is string => Boolean(k)));
      }
      d.state = 'sent';
      d.sentAt = now;
      d.expiresAt = new Date(now.getTime() + d.expiresInDays * DAY);
      // Sent: the sender's read-back window closes.
      await em.nativeUpdate(DeliveryFileSchema, { deliveryId: d.id, readbackUntil: { $ne: null } }, { readbackKey: null, readbackUntil: null });
      const sender = await em.findOneOrFail(AccountSchema, { id: d.senderId });
      const owner = d.ownerId === sender.id ? sender : await em.findOneOrFail(AccountSchema, { id: d.ownerId });
      const recipients = await em.find(DeliveryRecipientSchema, { deliveryId: d.id });
      recipientCount = recipients.length;
      const releaseNeeded: DeliveryRecipient[] = [];
      for (const r of recipients) {
        let account = r.accountId ? await em.findOne(AccountSchema, { id: r.accountId }) : await em.findOne(AccountSchema, { email: r.email });
        if (d.level === 1) {
          const token = newToken('link');
          r.linkTokenHash = hashToken(token);
          r.accountId = account?.id ?? null;
          this.setState(r, 'available');
          this.mail(em, 'delivery_link', r.email, { link: this.link('/link', { token }), sender: sender.email, subject: d.subject, expiresAt: d.expiresAt.toISOString() });
          continue;
        }
        if (!account) account = await this.accounts.inviteRecipient(em, r.email, actor);
        r.accountId = account.id;
        if (account.state === 'invited') {
          this.setState(r, 'awaiting_registration');
          await this.accounts.issueInvitation(em, account, { accountId: owner.id, email: sender.email }, 1);
          continue;
        }
        if (d.level === 2) {
          this.setState(r, 'available');
          this.readyMail(em, d, r, sender.email, items);
          continue;
        }
        const key = await em.findOne(SecuPassKeySchema, { accountId: account.id, destroyedAt: null });
        if (!key) {
          this.setState(r, 'awaiting_secupass');
          this.mail(em, 'secupass_needed', r.email, { link: this.link(`/deliveries/${d.id}`), sender: sender.email, subject: d.subject });
          continue;
        }
        const wrapped = await em.count(KeyWrapSchema, { keyId: key.id, fileId: { $in: items.map((f) => f.id) } });
        if (wrapped === items.length) {
          this.setState(r, 'available');
          r.releasedAt = now;
          r.releasedKeyId = key.id;
          r.releasedFingerprint = key.fingerprint;
          this.readyMail(em, d, r, sender.email, items);
        } else {
          this.setState(r, 'awaiting_release');
          releaseNeeded.push(r);
        }
      }
      if (releaseNeeded.length > 0) this.tellReleaseNeeded(em, d, owner, releaseNeeded, false);
      await audit(em, { action: 'delivery.sent', actor, targetType: 'delivery', targetId: d.id, data: { files: items.filter((f) => f.kind === 'file').length, discardedTemp: temps.length, recipients: recipients.map((r) => ({ email: r.email, state: r.state, fingerprint: r.releasedFingerprint ?? null })) } }, now);
    });
    for (const key of tempBlobs) await this.deps.blobs.delete(key);
    this.deps.events.emit('delivery.sent', { deliveryId, recipients: recipientCount });
    this.deps.events.emit('outbox.enqueued', { count: recipientCount });
    return this.get(p, deliveryId);
  }

  private setState(r: DeliveryRecipient, state: RecipientState): void {
    r.state = state;
    r.updatedAt = this.now();
  }

  private readyMail(em: Em, d: Delivery, r: DeliveryRecipient, sender: string, items: DeliveryFile[]): void {
    this.mail(em, 'delivery_ready', r.email, {
      link: this.link(`/deliveries/${d.id}`),
      sender,
      subject: d.subject,
      level: d.level,
      // Level 3/4 mails never name files.
      files: d.level <= 2 ? items.filter((f) => f.kind === 'file').map((f) => f.name) : [],
      expiresAt: d.expiresAt.toISOString(),
    });
    if (r.accountId) this.notify(em, r.accountId, 'delivery_available', d.id, { subject: d.subject, sender });
  }

  private tellReleaseNeeded(em: Em, d: Delivery, owner: Account, recipients: DeliveryRecipient[], again: boolean): void {
    for (const r of recipients) {
      this.notify(em, owner.id, 'release_needed', d.id, { recipient: r.email, subject: d.subject, again });
    }
    this.mail(em, 'release_needed', owner.email, {
      link: this.link(`/deliveries/${d.id}`),
      recipient: recipients.map((r) => r.email).join(', '),
      deliveries: [{ id: d.id, subject: d.subject }],
      again,
    });
  }

  // ---------------------------------------------------------------- account events

  /** After registration: level 2 deliveries become available, level 3/4 wait for the SecuPass. */
  async onRegistered(em: Em, account: Account, actor: Actor): Promise<void> {
    const rows = await em.find(DeliveryRecipientSchema, { accountId: account.id, state: 'awaiting_registration' });
    for (const r of rows) {
      const d = await em.findOneOrFail(DeliverySchema, { id: r.deliveryId });
      if (d.state !== 'sent') continue;
      if (d.level <= 2) {
        this.setState(r, 'available');
        const sender = await em.findOneOrFail(AccountSchema, { id: d.senderId });
        this.readyMail(em, d, r, sender.email, await em.find(DeliveryFileSchema, { deliveryId: d.id }));
      } else {
        this.setState(r, 'awaiting_secupass');
      }
      await audit(em, { action: 'recipient.state', actor, targetType: 'delivery', targetId: d.id, data: { email: r.email, state: r.state } }, this.now());
    }
  }

  /**
   * After a SecuPass activation: the account's level 3/4 deliveries waiting for registration,
   * SecuPass or a re-release (after a reset) now await release; each owner is told once.
   */
  async onKeyActivated(em: Em, account: Account, key: SecuPassKey, actor: Actor): Promise<void> {
    const rows = await em.find(DeliveryRecipientSchema, { accountId: account.id, state: { $in: ['awaiting_registration', 'awaiting_secupass', 'access_lost'] } });
    const byOwner = new Map<string, Array<{ d: Delivery; r: DeliveryRecipient; again: boolean }>>();
    for (const r of rows) {
      const d = await em.findOneOrFail(DeliverySchema, { id: r.deliveryId });
      if (d.state !== 'sent' || d.level < 3) continue;
      const again = r.state === 'access_lost';
      this.setState(r, 'awaiting_release');
      const list = byOwner.get(d.ownerId) ?? [];
      list.push({ d, r, again });
      byOwner.set(d.ownerId, list);
      await audit(em, { action: 'recipient.state', actor, targetType: 'delivery', targetId: d.id, data: { email: r.email, state: r.state, fingerprint: key.fingerprint } }, this.now());
    }
    for (const [ownerId, list] of byOwner) {
      const owner = await em.findOneOrFail(AccountSchema, { id: ownerId });
      for (const { d, again } of list) this.notify(em, owner.id, 'release_needed', d.id, { recipient: account.email, subject: d.subject, again, fingerprint: key.fingerprint });
      this.mail(em, 'release_needed', owner.email, {
        link: this.link('/outbox'),
        recipient: account.email,
        deliveries: list.map(({ d }) => ({ id: d.id, subject: d.subject })),
        again: list.some((x) => x.again),
      });
    }
  }

  /**
   * After an admin reset destroyed `key`: every wrap for it goes; as a recipient the account
   * loses access (owners told), as an owner its deliveries still awaiting release become
   * unreleasable (recipients and sender told) and its open ones are revoked.
   */
  async onKeyDestroyed(em: Em, account: Account, key: SecuPassKey, by: Actor): Promise<{ accessLost: number; unreleasable: number }> {
    await em.nativeDelete(KeyWrapSchema, { keyId: key.id });
    const now = this.now();
    // As a recipient.
    const rows = await em.find(DeliveryRecipientSchema, { accountId: account.id, state: { $in: ['available', 'downloaded', 'awaiting_release'] } });
    const lostByOwner = new Map<string, Delivery[]>();
    let accessLost = 0;
    for (const r of rows) {
      const d = await em.findOneOrFail(DeliverySchema, { id: r.deliveryId });
      if (d.level < 3 || d.state !== 'sent') continue;
      if (r.state === 'awaiting_release') {
        this.setState(r, 'awaiting_secupass');
      } else {
        this.setState(r, 'access_lost');
        accessLost++;
        const list = lostByOwner.get(d.ownerId) ?? [];
        list.push(d);
        lostByOwner.set(d.ownerId, list);
      }
      await audit(em, { action: 'recipient.state', actor: by, targetType: 'delivery', targetId: d.id, data: { email: r.email, state: r.state, reason: 'secupass_reset' } }, now);
    }
    for (const [ownerId, list] of lostByOwner) {
      const owner = await em.findOneOrFail(AccountSchema, { id: ownerId });
      for (const d of list) this.notify(em, owner.id, 'access_lost', d.id, { recipient: account.email, subject: d.subject });
      this.mail(em, 'access_lost', owner.email, { link: this.link('/outbox'), recipient: account.email, deliveries: list.map((d) => ({ id: d.id, subject: d.subject })) });
    }
    this.mail(em, 'secupass_reset', account.email, { link: this.link('/secupass'), lostDeliveries: accessLost });
    this.notify(em, account.id, 'secupass_reset', null, { lostDeliveries: accessLost });
    // As an owner.
    let unreleasable = 0;
    const owned = await em.find(DeliverySchema, { ownerId: account.id, level: { $gte: 3 }, state: { $in: ['open', 'sent'] } });
    for (const d of owned) {
      if (d.state === 'open') {
        d.state = 'revoked';
        d.closedAt = now;
        await audit(em, { action: 'delivery.revoked', actor: by, targetType: 'delivery', targetId: d.id, data: { reason: 'owner_secupass_reset' } }, now);
        continue;
      }
      const waiting = await em.find(DeliveryRecipientSchema, { deliveryId: d.id, state: { $in: [...WAITING, 'access_lost'] } });
      if (waiting.length === 0) continue;
      const sender = await em.findOneOrFail(AccountSchema, { id: d.senderId });
      for (const r of waiting) {
        this.setState(r, 'unreleasable');
        unreleasable++;
        this.mail(em, 'unreleasable', r.email, { link: this.link(`/deliveries/${d.id}`), subject: d.subject, sender: sender.email, role: 'recipient' });
        if (r.accountId) this.notify(em, r.accountId, 'unreleasable', d.id, { subject: d.subject });
      }
      this.notify(em, account.id, 'unreleasable', d.id, { subject: d.subject, recipients: waiting.map((r) => r.email) });
      this.mail(em, 'unreleasable', account.email, { link: this.link(`/deliveries/${d.id}`), subject: d.subject, sender: sender.email, role: 'sender' });
      if (sender.id !== account.id && sender.role !== 'service') {
        this.mail(em, 'unreleasable', sender.email, { link: this.link(`/deliveries/${d.id}`), subject: d.subject, sender: sender.email, role: 'sender' });
      }
      await audit(em, { action: 'delivery.unreleasable', actor: by, targetType: 'delivery', targetId: d.id, data: { recipients: waiting.map((r) => r.email) } }, now);
    }
    return { accessLost, unreleasable };
  }

  // ---------------------------------------------------------------- release

  /**
   * Server-side release: the owner's SecuPass unlocks the owner's key for this request only, the
   * session key of every item is re-wrapped to each recipient awaiting release. No blob is read.
   */
  async release(p: Principal, deliveryId: string, secupass: unknown): Promise<DeliveryView> {
    requireScope(p, 'release');
    if (!this.deps.config.crypto.serverSideSecupass) throw fail('SEALDROP_E_DISABLED', 'server-side release is switched off; release on your device');
    const em = readEm(this.deps);
    const d = await this.loadForOwner(em, p, deliveryId);
    const { targets, items, ownerKey } = await this.releaseTargets(em, d);
    const unlocked = await this.secupass.unlockWithLimit(p, ownerKey, secupass);
    const ownerWraps = await em.find(KeyWrapSchema, { keyId: ownerKey.id, fileId: { $in: items.map((f) => f.id) } });
    const plan = new Map<string, Array<{ fileId: string; keyId: string; pkesk: Uint8Array }>>();
    for (const w of ownerWraps) {
      const sessionKey = await unwrapSessionKey(w.pkesk, unlocked);
      for (const t of targets) {
        const list = plan.get(t.r.id) ?? [];
        list.push({ fileId: w.fileId, keyId: t.key.id, pkesk: await wrapSessionKey(sessionKey, t.key.publicKey) });
        plan.set(t.r.id, list);
      }
      sessionKey.fill(0);
    }
    if (ownerWraps.length !== items.length) throw fail('SEALDROP_E_UNRELEASABLE', 'the owner\'s key wraps are incomplete');
    await this.commitRelease(p, d.id, targets, plan, 'server');
    return this.get(p, deliveryId);
  }

  private async releaseTargets(em: Em, d: Delivery) {
    if (d.level < 3) throw fail('SEALDROP_E_WRONG_STATE', 'only level 3/4 deliveries are released');
    if (d.state !== 'sent') throw fail('SEALDROP_E_WRONG_STATE', `delivery is ${d.state}`);
    if (d.expiresAt.getTime() <= this.now().getTime()) throw fail('SEALDROP_E_EXPIRED');
    const rows = await em.find(DeliveryRecipientSchema, { deliveryId: d.id });
    const waiting = rows.filter((r) => r.state === 'awaiting_release');
    if (waiting.length === 0) {
      if (rows.some((r) => r.state === 'unreleasable')) throw fail('SEALDROP_E_UNRELEASABLE', 'the owner\'s SecuPass was reset; this delivery can never be released');
      throw fail('SEALDROP_E_WRONG_STATE', 'no recipient of this delivery awaits release');
    }
    const ownerKey = await em.findOne(SecuPassKeySchema, { accountId: d.ownerId, destroyedAt: null });
    if (!ownerKey) throw fail('SEALDROP_E_SECUPASS_REQUIRED', 'your SecuPass is not active');
    const items = await em.find(DeliveryFileSchema, { deliveryId: d.id });
    const targets: Array<{ r: DeliveryRecipient; key: SecuPassKey; email: string }> = [];
    for (const r of waiting) {
      const key = r.accountId ? await em.findOne(SecuPassKeySchema, { accountId: r.accountId, destroyedAt: null }) : null;
      if (key) targets.push({ r, key, email: r.email });
    }
    if (targets.length === 0) throw fail('SEALDROP_E_WRONG_STATE', 'no recipient of this delivery awaits release');
    return { targets, items, ownerKey };
  }

  private async commitRelease(p: Principal, deliveryId: string, targets: Array<{ r: DeliveryRecipient; key: SecuPassKey }>, plan: Map<string, Array<{ fileId: string; keyId: string; pkesk: Uint8Array }>>, how: 'server' | 'client'): Promise<void> {
    const now = this.now();
    let released = 0;
    await inTx(this.deps, async (em) => {
      const d = await em.findOne(DeliverySchema, { id: deliveryId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!d || d.state !== 'sent') throw fail('SEALDROP_E_WRONG_STATE', 'the delivery changed meanwhile');
      const sender = await em.findOneOrFail(AccountSchema, { id: d.senderId });
      const items = await em.find(DeliveryFileSchema, { deliveryId });
      for (const t of targets) {
        const r = await em.findOne(DeliveryRecipientSchema, { id: t.r.id });
        if (!r || r.state !== 'awaiting_release') continue;
        const wraps = plan.get(r.id) ?? [];
        for (const w of wraps) await this.insertWraps(em, w.fileId, [w]);
        await em.flush();
        const have = await em.count(KeyWrapSchema, { keyId: t.key.id, fileId: { $in: items.map((f) => f.id) } });
        if (have !== items.length) continue; // key destroyed meanwhile: nothing granted
        this.setState(r, 'available');
        r.releasedAt = now;
        r.releasedKeyId = t.key.id;
        r.releasedFingerprint = t.key.fingerprint;
        released++;
        this.readyMail(em, d, r, sender.email, items);
        await audit(em, { action: 'delivery.released', actor: actorOf(p), targetType: 'delivery', targetId: d.id, data: { recipient: r.email, fingerprint: t.key.fingerprint, how } }, now);
      }
      if (released === 0) throw fail('SEALDROP_E_WRONG_STATE', 'no recipient could be released (states or keys changed meanwhile)');
    });
    this.deps.events.emit('delivery.released', { deliveryId, recipients: released });
    this.deps.events.emit('outbox.enqueued', { count: released });
  }

  /**
   * What a client needs to release on its own device: the owner's wraps per item and, per
   * recipient awaiting release, the public key with fingerprint, registration facts and whether
   * the key differs from the one this owner last released to at that address.
   */
  async releaseMaterial(p: Principal, deliveryId: string) {
    requireScope(p, 'release');
    const em = readEm(this.deps);
    const d = await this.loadForOwner(em, p, deliveryId);
    const { targets, items, ownerKey } = await this.releaseTargets(em, d);
    const ownerWraps = await em.find(KeyWrapSchema, { keyId: ownerKey.id, fileId: { $in: items.map((f) => f.id) } });
    const wrapOf = new Map(ownerWraps.map((w) => [w.fileId, Buffer.from(w.pkesk).toString('base64')]));
    return {
      deliveryId: d.id,
      ownerKey: { fingerprint: ownerKey.fingerprint, encryptionKeyId: ownerKey.encryptionKeyId },
      items: items.map((f) => ({ fileId: f.id, kind: f.kind, name: f.kind === 'file' ? f.name : null, ownerWrap: wrapOf.get(f.id) ?? null })),
      recipients: await Promise.all(targets.map(async (t) => this.recipientKeyFacts(em, d, t.r, t.key))),
    };
  }

  private async recipientKeyFacts(em: Em, d: Delivery, r: DeliveryRecipient, key: SecuPassKey) {
    const account = r.accountId ? await em.findOne(AccountSchema, { id: r.accountId }) : null;
    const previous = await em.find(DeliveryRecipientSchema, { email: r.email, releasedFingerprint: { $ne: null }, deliveryId: { $in: (await em.find(DeliverySchema, { ownerId: d.ownerId }, { fields: ['id'] })).map((x) => x.id) } }, { orderBy: { releasedAt: 'desc' }, limit: 1 });
    const last = previous[0]?.releasedFingerprint ?? null;
    return {
      recipientId: r.id,
      email: r.email,
      state: r.state,
      fingerprint: key.fingerprint,
      encryptionKeyId: key.encryptionKeyId,
      publicKey: key.publicKey,
      keyCreatedAt: key.createdAt.toISOString(),
      keyCreatedFrom: key.createdFrom ?? null,
      registeredAt: account?.registeredAt ? account.registeredAt.toISOString() : null,
      registeredFrom: account?.registeredFrom ?? null,
      lastReleasedFingerprint: last,
      keyChanged: last !== null && last !== key.fingerprint,
    };
  }

  /**
   * Client-side release: stores wraps made on the owner's device. Each must be one v3 PKESK
   * addressed to the recipient's current key (named by fingerprint), one per item.
   */
  async addWraps(p: Principal, deliveryId: string, input: { wraps?: unknown }): Promise<DeliveryView> {
    requireScope(p, 'release');
    const em = readEm(this.deps);
    const d = await this.loadForOwner(em, p, deliveryId);
    const { targets, items } = await this.releaseTargets(em, d);
    if (!Array.isArray(input.wraps) || input.wraps.length === 0) throw fail('SEALDROP_E_VALIDATION', 'wraps must be a non-empty list of {recipientId, fingerprint, items:[{fileId, pkesk}]}');
    const plan = new Map<string, Array<{ fileId: string; keyId: string; pkesk: Uint8Array }>>();
    const chosen: typeof targets = [];
    for (const [i, w] of (input.wraps as unknown[]).entries()) {
      const entry = w as { recipientId?: unknown; fingerprint?: unknown; items?: unknown };
      const t = targets.find((x) => x.r.id === entry?.recipientId);
      if (!t) throw fail('SEALDROP_E_WRONG_STATE', `wraps[${i}]: recipient does not await release`);
      if (entry.fingerprint !== t.key.fingerprint) throw fail('SEALDROP_E_WRAP_INVALID', `wraps[${i}]: the recipient's key is ${t.key.fingerprint}, not ${String(entry.fingerprint)}`);
      if (!Array.isArray(entry.items) || entry.items.length !== items.length) throw fail('SEALDROP_E_WRAP_INVALID', `wraps[${i}]: expected one wrap for each of the ${items.length} items`);
      const list: Array<{ fileId: string; keyId: string; pkesk: Uint8Array }> = [];
      const seen = new Set<string>();
      for (const [j, it] of (entry.items as unknown[]).entries()) {
        const item = it as { fileId?: unknown; pkesk?: unknown };
        const file = items.find((f) => f.id === item?.fileId);
        if (!file || seen.has(file.id)) throw fail('SEALDROP_E_WRAP_INVALID', `wraps[${i}].items[${j}]: unknown or repeated fileId`);
        seen.add(file.id);
        if (typeof item.pkesk !== 'string' || item.pkesk.length > 4096 || !/^[A-Za-z0-9+/]+={0,2}$/.test(item.pkesk)) throw fail('SEALDROP_E_WRAP_INVALID', `wraps[${i}].items[${j}]: pkesk must be base64`);
        const pkesk = Buffer.from(item.pkesk, 'base64');
        try {
          checkClientWrap(pkesk, t.key.encryptionKeyId);
        } catch (err) {
          throw fail('SEALDROP_E_WRAP_INVALID', `wraps[${i}].items[${j}]: ${(err as Error).message}`);
        }
        list.push({ fileId: file.id, keyId: t.key.id, pkesk });
      }
      plan.set(t.r.id, list);
      chosen.push(t);
    }
    await this.commitRelease(p, d.id, chosen, plan, 'client');
    return this.get(p, deliveryId);
  }

  // ---------------------------------------------------------------- reading

  private async loadVisible(em: Em, p: Principal, id: string): Promise<{ d: Delivery; role: DeliveryView['role']; mine: DeliveryRecipient | null }> {
    const d = isUuid(id) ? await em.findOne(DeliverySchema, { id }) : null;
    if (!d) throw fail('SEALDROP_E_NOT_FOUND', 'no such delivery');
    const mine = await em.findOne(DeliveryRecipientSchema, { deliveryId: d.id, accountId: p.accountId });
    if (d.senderId === p.accountId) return { d, role: 'sender', mine };
    if (d.ownerId === p.accountId) return { d, role: 'owner', mine };
    if (mine && d.state !== 'open') return { d, role: 'recipient', mine };
    if (p.scopes.has('admin')) return { d, role: 'admin', mine: null };
    throw fail('SEALDROP_E_NOT_FOUND', 'no such delivery');
  }

  private async loadForSender(em: Em, p: Principal, id: string, lockMode?: LockMode): Promise<Delivery> {
    const d = isUuid(id) ? await em.findOne(DeliverySchema, { id }, lockMode ? { lockMode } : {}) : null;
    if (!d) throw fail('SEALDROP_E_NOT_FOUND', 'no such delivery');
    if (d.senderId !== p.accountId && d.ownerId !== p.accountId) {
      const recipient = d.state !== 'open' && (await em.count(DeliveryRecipientSchema, { deliveryId: d.id, accountId: p.accountId })) > 0;
      if (recipient) throw fail('SEALDROP_E_FORBIDDEN', 'only the sender of this delivery can do this');
      throw fail('SEALDROP_E_NOT_FOUND', 'no such delivery');
    }
    return d;
  }

  private async loadForOwner(em: Em, p: Principal, id: string): Promise<Delivery> {
    const d = isUuid(id) ? await em.findOne(DeliverySchema, { id }) : null;
    if (!d || (d.ownerId !== p.accountId && d.senderId !== p.accountId)) throw fail('SEALDROP_E_NOT_FOUND', 'no such delivery');
    if (d.ownerId !== p.accountId) throw fail('SEALDROP_E_FORBIDDEN', 'only the owner of this delivery releases it');
    return d;
  }

  /** One delivery as the caller may see it. */
  async get(p: Principal, id: string): Promise<DeliveryView> {
    const em = readEm(this.deps);
    const { d, role, mine } = await this.loadVisible(em, p, id);
    return this.view(em, d, role, mine);
  }

  private async view(em: Em, d: Delivery, role: DeliveryView['role'], mine: DeliveryRecipient | null): Promise<DeliveryView> {
    const [files, recipients, people] = await Promise.all([
      em.find(DeliveryFileSchema, { deliveryId: d.id, kind: 'file', temp: false }, { orderBy: { name: 'asc' } }),
      role === 'recipient' && mine ? Promise.resolve([mine]) : em.find(DeliveryRecipientSchema, { deliveryId: d.id }, { orderBy: { email: 'asc' } }),
      em.find(AccountSchema, { id: { $in: [d.senderId, d.ownerId] } }),
    ]);
    const accountIds = recipients.map((r) => r.accountId).filter((x): x is string => Boolean(x));
    const keys = accountIds.length ? await em.find(SecuPassKeySchema, { accountId: { $in: accountIds }, destroyedAt: null }) : [];
    const emailOf = (id: string) => people.find((a) => a.id === id)?.email ?? '';
    return {
      id: d.id,
      subject: d.subject,
      level: d.level,
      state: d.state,
      origin: d.origin,
      dropFolder: d.dropFolder ?? null,
      sender: emailOf(d.senderId),
      owner: emailOf(d.ownerId),
      createdAt: d.createdAt.toISOString(),
      sentAt: d.sentAt ? d.sentAt.toISOString() : null,
      expiresAt: d.expiresAt.toISOString(),
      hasMessage: d.hasMessage,
      files: files.map(fileView),
      recipients: recipients.map((r) => {
        const key = keys.find((k) => k.accountId === r.accountId);
        return {
          id: r.id,
          email: r.email,
          state: r.state,
          key: key ? { fingerprint: key.fingerprint, createdAt: key.createdAt.toISOString() } : null,
          releasedAt: r.releasedAt ? r.releasedAt.toISOString() : null,
          releasedFingerprint: r.releasedFingerprint ?? null,
          downloadedAt: r.downloadedAt ? r.downloadedAt.toISOString() : null,
        };
      }),
      role,
    };
  }

  /** The caller's deliveries: `inbox` (received) or `outbox` (sent or owned), optionally by state. */
  async list(p: Principal, query: { box?: unknown; state?: unknown; limit?: unknown }): Promise<DeliveryView[]> {
    const box = query.box ?? 'inbox';
    if (box !== 'inbox' && box !== 'outbox') throw fail('SEALDROP_E_VALIDATION', 'box must be inbox or outbox');
    if (box === 'inbox') requireScope(p, 'fetch');
    else if (!p.scopes.has('send') && !p.scopes.has('release')) requireScope(p, 'send');
    const limit = query.limit === undefined ? 200 : Number(query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw fail('SEALDROP_E_VALIDATION', 'limit must be 1-1000');
    const em = readEm(this.deps);
    const state = query.state;
    if (state !== undefined && typeof state !== 'string') throw fail('SEALDROP_E_VALIDATION', 'state must be a string');
    const out: DeliveryView[] = [];
    if (box === 'inbox') {
      const rows = await em.find(DeliveryRecipientSchema, { accountId: p.accountId, ...(state ? { state: state as RecipientState } : {}) }, { orderBy: { updatedAt: 'desc' }, limit });
      for (const r of rows) {
        const d = await em.findOne(DeliverySchema, { id: r.deliveryId });
        if (d && d.state !== 'open') out.push(await this.view(em, d, 'recipient', r));
      }
    } else {
      const rows = await em.find(DeliverySchema, { $or: [{ senderId: p.accountId }, { ownerId: p.accountId }], ...(state ? { state: state as Delivery['state'] } : {}) }, { orderBy: { createdAt: 'desc' }, limit });
      for (const d of rows) out.push(await this.view(em, d, d.senderId === p.accountId ? 'sender' : 'owner', null));
    }
    return out;
  }

  /** Every delivery (admin overview: metadata only), newest first. */
  async adminList(p: Principal, query: { state?: unknown; limit?: unknown } = {}): Promise<DeliveryView[]> {
    requireScope(p, 'admin');
    const limit = query.limit === undefined ? 200 : Number(query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw fail('SEALDROP_E_VALIDATION', 'limit must be 1-1000');
    const state = typeof query.state === 'string' && query.state ? { state: query.state as Delivery['state'] } : {};
    const em = readEm(this.deps);
    const rows = await em.find(DeliverySchema, state, { orderBy: { createdAt: 'desc' }, limit });
    const out: DeliveryView[] = [];
    for (const d of rows) out.push(await this.view(em, d, 'admin', null));
    return out;
  }

  /** The caller's notifications, newest first. */
  async notifications(p: Principal, options: { unreadOnly?: boolean } = {}) {
    const rows = await readEm(this.deps).find(NotificationSchema, { accountId: p.accountId, ...(options.unreadOnly ? { readAt: null } : {}) }, { orderBy: { createdAt: 'desc' }, limit: 200 });
    return rows.map((n) => ({ id: n.id, kind: n.kind, deliveryId: n.deliveryId ?? null, data: n.data, createdAt: n.createdAt.toISOString(), readAt: n.readAt ? n.readAt.toISOString() : null }));
  }

  /** Marks notifications as read (all, or the given ids). */
  async markNotificationsRead(p: Principal, ids: unknown): Promise<number> {
    const filter = Array.isArray(ids) ? { id: { $in: ids.filter(isUuid) } } : {};
    return inTx(this.deps, (em) => em.nativeUpdate(NotificationSchema, { accountId: p.accountId, readAt: null, ...filter }, { readAt: this.now() }));
  }

  // ---------------------------------------------------------------- download

  private checkOpenable(d: Delivery): void {
    if (d.state === 'revoked') throw fail('SEALDROP_E_REVOKED');
    if (d.state === 'expired' || d.expiresAt.getTime() <= this.now().getTime()) throw fail('SEALDROP_E_EXPIRED');
  }

  private checkRecipientAccess(r: DeliveryRecipient): void {
    switch (r.state) {
      case 'available':
      case 'downloaded':
        return;
      case 'access_lost':
        throw fail('SEALDROP_E_ACCESS_LOST');
      case 'unreleasable':
        throw fail('SEALDROP_E_UNRELEASABLE');
      case 'revoked':
        throw fail('SEALDROP_E_REVOKED');
      case 'expired':
        throw fail('SEALDROP_E_EXPIRED');
      case 'awaiting_secupass':
        throw fail('SEALDROP_E_SECUPASS_REQUIRED', 'activate your SecuPass; the sender then releases the delivery to you');
      default:
        throw fail('SEALDROP_E_NOT_RELEASED');
    }
  }

  /**
   * Opens a file (or, with `kind: 'message'`, the level-4 message) for download. Level 3/4:
   * `PKESK(caller) || blob`, a standard OpenPGP message. Levels 1/2: plaintext, decrypted with
   * its integrity checked chunk by chunk. The first download by a recipient sends the owner a receipt.
   */
  async download(p: Principal, deliveryId: string, fileId: string | { kind: 'message' }): Promise<Download> {
    requireScope(p, 'fetch');
    const em = readEm(this.deps);
    const { d, role, mine } = await this.loadVisible(em, p, deliveryId);
    if (role === 'admin') throw fail('SEALDROP_E_NOT_FOUND', 'no such delivery');
    this.checkOpenable(d);
    const file = typeof fileId === 'string'
      ? (isUuid(fileId) ? await em.findOne(DeliveryFileSchema, { id: fileId, deliveryId: d.id, kind: 'file' }) : null)
      : await em.findOne(DeliveryFileSchema, { deliveryId: d.id, kind: 'message' });
    if (typeof fileId !== 'string' && d.level < 4) throw fail('SEALDROP_E_WRONG_STATE', 'only level-4 messages are downloaded; read the message from the delivery');
    if (!file || !file.blobKey) throw fail('SEALDROP_E_NOT_FOUND', typeof fileId === 'string' ? 'no such file' : 'this delivery has no message');
    const isRecipient = role === 'recipient' || (mine !== null && role !== 'sender' && role !== 'owner');
    if (isRecipient && mine) this.checkRecipientAccess(mine);
    let result: Download;
    if (d.level >= 3) {
      const holder = isRecipient ? (mine?.accountId ?? p.accountId) : d.ownerId;
      if (!isRecipient && d.ownerId !== p.accountId) throw fail('SEALDROP_E_FORBIDDEN', 'only the owner and the recipients can open level 3/4 files');
      const key = await em.findOne(SecuPassKeySchema, { accountId: holder, destroyedAt: null });
      const wrap = key ? await em.findOne(KeyWrapSchema, { fileId: file.id, keyId: key.id }) : null;
      if (!wrap) throw fail(isRecipient ? 'SEALDROP_E_ACCESS_LOST' : 'SEALDROP_E_SECUPASS_REQUIRED', isRecipient ? undefined : 'your key holds no wrap for this file');
      const pkesk = Buffer.from(wrap.pkesk);
      result = {
        stream: await this.deps.blobs.get(file.blobKey, { head: pkesk }),
        size: pkesk.length + file.blobSize,
        fileName: `${file.kind === 'message' ? MESSAGE_NAME : file.name}.pgp`,
        contentType: 'application/pgp-encrypted',
        encrypted: true,
      };
    } else {
      const blob = await this.deps.blobs.get(file.blobKey);
      result = { stream: await decryptSeipdV2(blob, this.deliveryKey(d)), size: file.size, fileName: file.name, contentType: 'application/octet-stream', encrypted: false };
    }
    await this.recordDownload(actorOf(p), d, mine && isRecipient ? mine : null, file, p.via);
    return result;
  }

  /**
   * The sender reads back one of its own unsent files within the read-back window of a WebDAV
   * upload. The stored file is first decrypted whole and its integrity checked (the MDC of a
   * level 3/4 file under its sealed session key, every chunk's tag of a level 1/2 file under the
   * delivery key), the plaintext thrown away, so nothing leaves before the check; then it is
   * decrypted again as it streams.
   */
  async readBack(p: Principal, deliveryId: string, fileId: string): Promise<Download> {
    requireScope(p, 'send');
    const em = readEm(this.deps);
    const d = await this.loadForSender(em, p, deliveryId);
    const file = await em.findOne(DeliveryFileSchema, { id: fileId, deliveryId: d.id, kind: 'file' });
    if (!file || !file.blobKey) throw fail('SEALDROP_E_NOT_FOUND', 'no such file');
    const now = this.now();
    if (d.state !== 'open' || !file.readbackUntil || file.readbackUntil.getTime() <= now.getTime() || (d.level >= 3 && !file.readbackKey)) {
      throw fail('SEALDROP_E_FORBIDDEN', 'your unsent files are stored encrypted and can be read back only shortly after a WebDAV upload; see /inbox for deliveries to you');
    }
    const blobKey = file.blobKey;
    const sessionKey = () => this.deps.kek.open('readback', file.readbackKey as Uint8Array, file.id);
    const decrypt = async (): Promise<Readable> => {
      const blob = await this.deps.blobs.get(blobKey);
      if (d.level < 3) return decryptSeipdV2(blob, this.deliveryKey(d));
      const key = sessionKey();
      try {
        return await decryptSeipdV1(blob, key);
      } finally {
        key.fill(0); // the cipher holds its own copy
      }
    };
    // The whole check first: level 3/4 decrypted into one reused buffer (MDC), level 1/2 chunk
    // by chunk (GCM tags); the plaintext is thrown away.
    const verify = async (): Promise<number> => {
      if (d.level >= 3) {
        const key = sessionKey();
        try {
          return await verifySeipdV1(await this.deps.blobs.get(blobKey), key);
        } finally {
          key.fill(0);
        }
      }
      let n = 0;
      for await (const chunk of await decrypt()) n += (chunk as Uint8Array).length;
      return n;
    };
    let plainBytes: number;
    try {
      plainBytes = await verify();
    } catch (err) {
      this.deps.log.error({ deliveryId: d.id, fileId: file.id, code: 'SEALDROP_E_INTERNAL', err: (err as Error).message }, 'stored file failed its integrity check');
      throw fail('SEALDROP_E_INTERNAL', 'the stored file failed its integrity check');
    }
    if (plainBytes !== file.size) {
      this.deps.log.error({ deliveryId: d.id, fileId: file.id, code: 'SEALDROP_E_INTERNAL', plainBytes, size: file.size }, 'stored file has not its recorded size');
      throw fail('SEALDROP_E_INTERNAL', 'the stored file failed its integrity check');
    }
    return { stream: await decrypt(), size: file.size, fileName: file.name, contentType: 'application/octet-stream', encrypted: false };
  }

  private async recordDownload(actor: Actor, d: Delivery, recipient: DeliveryRecipient | null, file: DeliveryFile, via: Via | string, extra: Record<string, unknown> = {}): Promise<void> {
    const now = this.now();
    await inTx(this.deps, async (em) => {
      if (recipient && recipient.state === 'available') {
        const r = await em.findOne(DeliveryRecipientSchema, { id: recipient.id });
        if (r && r.state === 'available') {
          this.setState(r, 'downloaded');
          r.downloadedAt = now;
          const owner = await em.findOneOrFail(AccountSchema, { id: d.ownerId });
          this.mail(em, 'download_receipt', owner.email, { link: this.link(`/deliveries/${d.id}`), recipient: r.email, subject: d.subject, at: now.toISOString() });
          this.notify(em, owner.id, 'downloaded', d.id, { recipient: r.email, subject: d.subject });
          if (d.senderId !== d.ownerId) {
            const sender = await em.findOneOrFail(AccountSchema, { id: d.senderId });
            if (sender.role !== 'service') this.mail(em, 'download_receipt', sender.email, { link: this.link(`/deliveries/${d.id}`), recipient: r.email, subject: d.subject, at: now.toISOString() });
          }
        }
      }
      await audit(em, { action: 'file.downloaded', actor, targetType: 'delivery', targetId: d.id, data: { fileId: file.id, kind: file.kind, via, ...extra } }, now);
    });
    this.deps.events.emit('file.downloaded', { deliveryId: d.id, fileId: file.id, via: String(via) });
  }

  /** The message of a delivery: level 4 as an OpenPGP download, levels 1-3 as text (null if none). */
  async message(p: Principal, deliveryId: string): Promise<{ encrypted: true; download: Download } | { encrypted: false; text: string | null }> {
    const em = readEm(this.deps);
    const d = isUuid(deliveryId) ? await em.findOne(DeliverySchema, { id: deliveryId }) : null;
    if (d?.level === 4) return { encrypted: true, download: await this.download(p, deliveryId, { kind: 'message' }) };
    return { encrypted: false, text: await this.readMessage(p, deliveryId) };
  }

  /** The message of a level 1-3 delivery as text (level 4: use download with kind message). */
  async readMessage(p: Principal, deliveryId: string): Promise<string | null> {
    requireScope(p, 'fetch');
    const em = readEm(this.deps);
    const { d, role, mine } = await this.loadVisible(em, p, deliveryId);
    if (role === 'admin') throw fail('SEALDROP_E_NOT_FOUND', 'no such delivery');
    if (d.level === 4) throw fail('SEALDROP_E_WRONG_STATE', 'a level-4 message is end-to-end encrypted; download it as an OpenPGP file');
    this.checkOpenable(d);
    if (role === 'recipient' && mine) this.checkRecipientAccess(mine);
    if (!d.messageCipher) return null;
    return openMessage(this.deliveryKey(d), d.messageCipher, d.id);
  }

  // ---------------------------------------------------------------- level 1 links

  private async byLink(token: unknown): Promise<{ d: Delivery; r: DeliveryRecipient }> {
    if (!looksLikeToken(token, 'link')) throw fail('SEALDROP_E_TOKEN_INVALID');
    const em = readEm(this.deps);
    const r = await em.findOne(DeliveryRecipientSchema, { linkTokenHash: hashToken(token) });
    const d = r ? await em.findOne(DeliverySchema, { id: r.deliveryId }) : null;
    if (!r || !d || d.level !== 1) throw fail('SEALDROP_E_TOKEN_INVALID');
    this.checkOpenable(d);
    if (r.state === 'revoked') throw fail('SEALDROP_E_REVOKED');
    return { d, r };
  }

  /** A level-1 delivery seen through its link. */
  async linkView(token: unknown) {
    const { d, r } = await this.byLink(token);
    const em = readEm(this.deps);
    const files = await em.find(DeliveryFileSchema, { deliveryId: d.id, kind: 'file' }, { orderBy: { name: 'asc' } });
    const sender = await em.findOneOrFail(AccountSchema, { id: d.senderId });
    return {
      id: d.id,
      subject: d.subject,
      sender: sender.email,
      recipient: r.email,
      expiresAt: d.expiresAt.toISOString(),
      message: d.messageCipher ? openMessage(this.deliveryKey(d), d.messageCipher, d.id) : null,
      files: files.map(fileView),
    };
  }

  /** Downloads a level-1 file through its link; the downloader's e-mail address is required and logged. */
  async downloadByLink(token: unknown, fileId: string, emailInput: unknown, ip: string | undefined): Promise<Download> {
    const email = normalizeEmail(emailInput);
    const { d, r } = await this.byLink(token);
    const em = readEm(this.deps);
    const file = isUuid(fileId) ? await em.findOne(DeliveryFileSchema, { id: fileId, deliveryId: d.id, kind: 'file' }) : null;
    if (!file || !file.blobKey) throw fail('SEALDROP_E_NOT_FOUND', 'no such file');
    const blob = await this.deps.blobs.get(file.blobKey);
    const stream = await decryptSeipdV2(blob, this.deliveryKey(d));
    await this.recordDownload({ accountId: null, email, ip }, d, r, file, 'link', { linkRecipient: r.email });
    return { stream, size: file.size, fileName: file.name, contentType: 'application/octet-stream', encrypted: false };
  }

  // ---------------------------------------------------------------- revoke and expiry

  /** Revokes a delivery (sender or owner): nobody can open it any more; its ciphertext is deleted. */
  async revoke(p: Principal, deliveryId: string): Promise<DeliveryView> {
    requireScope(p, 'send');
    const now = this.now();
    const blobs = await inTx(this.deps, async (em) => {
      const d = await this.loadForSender(em, p, deliveryId, LockMode.PESSIMISTIC_WRITE);
      if (d.state !== 'open' && d.state !== 'sent') throw fail('SEALDROP_E_WRONG_STATE', `delivery is ${d.state} already`);
      const wasSent = d.state === 'sent';
      d.state = 'revoked';
      d.closedAt = now;
      const sender = await em.findOneOrFail(AccountSchema, { id: d.senderId });
      const recipients = await em.find(DeliveryRecipientSchema, { deliveryId: d.id });
      for (const r of recipients) {
        const told = wasSent && r.state !== 'pending';
        this.setState(r, 'revoked');
        if (told) this.mail(em, 'delivery_revoked', r.email, { sender: sender.email, subject: d.subject });
        if (told && r.accountId) this.notify(em, r.accountId, 'revoked', d.id, { subject: d.subject });
      }
      await audit(em, { action: 'delivery.revoked', actor: actorOf(p), targetType: 'delivery', targetId: d.id }, now);
      return this.purgeContent(em, d.id);
    });
    for (const key of blobs) await this.deps.blobs.delete(key);
    this.deps.events.emit('delivery.revoked', { deliveryId });
    return this.get(p, deliveryId);
  }

  /** Deletes wraps and file blobs' rows' keys of a delivery (the delivery record and audit trail stay); returns blob keys to delete after commit. */
  private async purgeContent(em: Em, deliveryId: string): Promise<string[]> {
    const files = await em.find(DeliveryFileSchema, { deliveryId });
    const ids = files.map((f) => f.id);
    if (ids.length) await em.nativeDelete(KeyWrapSchema, { fileId: { $in: ids } });
    const keys = files.map((f) => f.blobKey).filter((k): k is string => Boolean(k));
    if (ids.length) await em.nativeUpdate(DeliveryFileSchema, { id: { $in: ids } }, { blobKey: null });
    await em.nativeUpdate(DeliverySchema, { id: deliveryId }, { deliveryKey: null, messageCipher: null });
    return keys;
  }

  /** Expires every delivery past its expiry: state expired, recipients expired, wraps and blobs deleted. Returns how many. */
  async expireDue(): Promise<number> {
    const now = this.now();
    await inTx(this.deps, (em) => em.nativeUpdate(DeliveryFileSchema, { readbackUntil: { $lte: now } }, { readbackKey: null, readbackUntil: null }));
    const due = await readEm(this.deps).find(DeliverySchema, { state: { $in: ['open', 'sent'] }, expiresAt: { $lte: now } }, { limit: 500 });
    let n = 0;
    for (const candidate of due) {
      const blobs = await inTx(this.deps, async (em) => {
        const d = await em.findOne(DeliverySchema, { id: candidate.id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
        if (!d || (d.state !== 'open' && d.state !== 'sent') || d.expiresAt.getTime() > now.getTime()) return null;
        d.state = 'expired';
        d.closedAt = now;
        const recipients = await em.find(DeliveryRecipientSchema, { deliveryId: d.id, state: { $nin: ['revoked', 'unreleasable'] } });
        for (const r of recipients) this.setState(r, 'expired');
        await audit(em, { action: 'delivery.expired', actor: { accountId: null, email: 'system' }, targetType: 'delivery', targetId: d.id }, now);
        return this.purgeContent(em, d.id);
      });
      if (!blobs) continue;
      for (const key of blobs) await this.deps.blobs.delete(key);
      this.deps.events.emit('delivery.expired', { deliveryId: candidate.id });
      n++;
    }
    return n;
  }

  /**
   * Recovery after a crash: removes temporary blob files and blobs no file row refers to
   * (older than `graceMs`, so another instance's upload in flight is spared).
   */
  async recoverOrphans(graceMs: number): Promise<{ temp: number; orphans: number }> {
    const temp = await this.deps.blobs.cleanup(graceMs);
    const em = readEm(this.deps);
    let orphans = 0;
    const now = Date.now();
    for await (const key of this.deps.blobs.list()) {
      const used = await em.count(DeliveryFileSchema, { blobKey: key });
      if (used > 0) continue;
      const st = await this.deps.blobs.stat(key);
      if (st && now - st.modifiedAt.getTime() >= graceMs) {
        await this.deps.blobs.delete(key);
        orphans++;
      }
    }
    return { temp, orphans };
  }
}

function fileView(f: DeliveryFile): FileView {
  return { id: f.id, name: f.name, size: f.size, createdAt: f.createdAt.toISOString() };
}

function sealMessage(key: Buffer, message: string, deliveryId: string): Buffer {
  // Same construction as the KEK's sealed values, under the per-delivery key.
  return sealWithKey(key, Buffer.from(message, 'utf8'), `message:${deliveryId}`);
}

function openMessage(key: Buffer, sealed: Uint8Array, deliveryId: string): string {
  return openWithKey(key, sealed, `message:${deliveryId}`).toString('utf8');
}

/** Expands a subject template: the given variables ({folder}, {sender}, {recipient}...), {date} (YYYY-MM-DD), {time} (HH:MM, UTC). */
export function renderSubject(template: string, vars: Record<string, string>, now: Date): string {
  const iso = now.toISOString();
  const all: Record<string, string> = { ...vars, date: iso.slice(0, 10), time: iso.slice(11, 16) };
  return template.replace(/\{(\w+)\}/g, (m, k: string) => all[k] ?? m);
}
