/**
 * The data model (MikroORM `defineEntity`). Relations map to primary-key values (`mapToPk`) so
 * that rows are plain records with foreign-key constraints; the core works with ids, not graphs.
 * Nothing here is SQLite-specific: ids are UUID strings, sizes are `bigint` columns read as
 * numbers, binary values are `blob`s, times are `datetime`s.
 */
import { defineEntity, type InferEntity } from '@mikro-orm/core';

/** Roles of an account. */
export const ROLES = ['admin', 'member', 'service', 'guest'] as const;
/** A role: admin (manages accounts), member (sends and receives), service (a system that uploads into drop folders), guest (an invited recipient). */
export type Role = (typeof ROLES)[number];

/** States of an account. */
export const ACCOUNT_STATES = ['invited', 'active', 'disabled'] as const;
/** An account state. */
export type AccountState = (typeof ACCOUNT_STATES)[number];

/** States of a delivery as a whole. */
export const DELIVERY_STATES = ['open', 'sent', 'revoked', 'expired'] as const;
/** A delivery state: open (files being added), sent, revoked (by its sender), expired. */
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/** States of one recipient of a delivery. */
export const RECIPIENT_STATES = [
  'pending',
  'awaiting_registration',
  'awaiting_secupass',
  'awaiting_release',
  'available',
  'downloaded',
  'access_lost',
  'unreleasable',
  'expired',
  'revoked',
] as const;
/** A recipient state (`pending` while the delivery is still open). */
export type RecipientState = (typeof RECIPIENT_STATES)[number];

/** Purposes of single-use account tokens. */
export const ACCOUNT_TOKEN_PURPOSES = ['invitation', 'password_reset'] as const;
/** A single-use token purpose. */
export type AccountTokenPurpose = (typeof ACCOUNT_TOKEN_PURPOSES)[number];

/** Outbox message states. */
export const OUTBOX_STATES = ['pending', 'sent', 'failed'] as const;

/** Account: a person or system that logs in. */
export const AccountSchema = defineEntity({
  name: 'Account',
  tableName: 'account',
  properties: (p) => ({
    id: p.uuid().primary(),
    email: p.string().length(320).unique(),
    role: p.enum([...ROLES]),
    state: p.enum([...ACCOUNT_STATES]),
    displayName: p.string().length(200).nullable(),
    passwordHash: p.string().length(255).nullable(),
    /** The member responsible for a service account. */
    ownerId: p.uuid().nullable().index(),
    createdAt: p.datetime(),
    registeredAt: p.datetime().nullable(),
    registeredFrom: p.string().length(100).nullable(),
    passwordChangedAt: p.datetime().nullable(),
    disabledAt: p.datetime().nullable(),
  }),
});
/** An account row. */
export type Account = InferEntity<typeof AccountSchema>;

/** Session: a login session (API bearer token or browser cookie), stored as a hash. */
export const SessionSchema = defineEntity({
  name: 'Session',
  tableName: 'session',
  properties: (p) => ({
    id: p.uuid().primary(),
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').deleteRule('cascade').index(),
    tokenHash: p.string().length(64).unique(),
    /** `api` (bearer token) or `ui` (browser cookie). */
    kind: p.string().length(8).default('api'),
    createdAt: p.datetime(),
    expiresAt: p.datetime().index(),
    lastSeenAt: p.datetime(),
    ip: p.string().length(100).nullable(),
  }),
});
/** A session row. */
export type Session = InferEntity<typeof SessionSchema>;

/** ApiToken: a named, scoped, expiring bearer token for automation. */
export const ApiTokenSchema = defineEntity({
  name: 'ApiToken',
  tableName: 'api_token',
  properties: (p) => ({
    id: p.uuid().primary(),
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').deleteRule('cascade').index(),
    name: p.string().length(100),
    tokenHash: p.string().length(64).unique(),
    scopes: p.json<string[]>(),
    createdAt: p.datetime(),
    expiresAt: p.datetime().index(),
    lastUsedAt: p.datetime().nullable(),
    revokedAt: p.datetime().nullable(),
  }),
});
/** An API token row. */
export type ApiToken = InferEntity<typeof ApiTokenSchema>;

/** AccountToken: a single-use, expiring token sent by e-mail (invitation, password reset). */
export const AccountTokenSchema = defineEntity({
  name: 'AccountToken',
  tableName: 'account_token',
  properties: (p) => ({
    id: p.uuid().primary(),
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').deleteRule('cascade').index(),
    purpose: p.enum([...ACCOUNT_TOKEN_PURPOSES]),
    tokenHash: p.string().length(64).unique(),
    createdAt: p.datetime(),
    expiresAt: p.datetime(),
    usedAt: p.datetime().nullable(),
  }),
});
/** An account token row. */
export type AccountToken = InferEntity<typeof AccountTokenSchema>;

/** SecuPassKey: one OpenPGP key pair per SecuPass activation; the private key only encrypted. */
export const SecuPassKeySchema = defineEntity({
  name: 'SecuPassKey',
  tableName: 'secupass_key',
  properties: (p) => ({
    id: p.uuid().primary(),
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').deleteRule('cascade').index(),
    fingerprint: p.string().length(64).index(),
    /** Key id (16 hex) of the encryption subkey, as found in PKESK packets. */
    encryptionKeyId: p.string().length(16),
    publicKey: p.text(),
    /** Armored private key, encrypted under the SecuPass; null once destroyed. */
    privateKey: p.text().nullable(),
    /** `server` (generated from a SecuPass sent to the server) or `client`. */
    origin: p.string().length(16),
    createdAt: p.datetime(),
    createdFrom: p.string().length(100).nullable(),
    destroyedAt: p.datetime().nullable(),
  }),
});
/** A SecuPass key row. */
export type SecuPassKey = InferEntity<typeof SecuPassKeySchema>;

/** Delivery: files (and a message) from a sender to recipients, at a security level. */
export const DeliverySchema = defineEntity({
  name: 'Delivery',
  tableName: 'delivery',
  properties: (p) => ({
    id: p.uuid().primary(),
    /** Who created it (a member, or a service account dropping into a folder). */
    senderId: p.manyToOne(AccountSchema).mapToPk().fieldName('sender_id').index(),
    /** Whose key holds the sender wraps and who releases (the sender, or the drop folder's owner). */
    ownerId: p.manyToOne(AccountSchema).mapToPk().fieldName('owner_id').index(),
    subject: p.string().length(1000),
    level: p.integer(),
    state: p.enum([...DELIVERY_STATES]).index(),
    /** Levels 1-3: message text encrypted under the delivery key (AES-256-GCM). */
    messageCipher: p.blob().nullable(),
    /** Level 4: the message is a DeliveryFile of kind `message`. */
    hasMessage: p.boolean(),
    /** Levels 1-3: the per-delivery key wrapped under the key-encryption key. */
    deliveryKey: p.blob().nullable(),
    dropFolder: p.string().length(64).nullable(),
    /**
     * Folder of the virtual tree (SFTP, WebDAV) this open delivery collects files for, e.g.
     * `outbox/x@example.org`, `outbox/x@example.org/Contract`, `drop/invoices`. At most one open
     * delivery per sender and folder (partial unique index).
     */
    folderKey: p.string().length(700).nullable(),
    /** Last upload or change through the tree (idle-time sending). */
    lastActivityAt: p.datetime().nullable(),
    /** Protocol the delivery came in through (api, sftp, webdav, ui, cli). */
    origin: p.string().length(16),
    createdAt: p.datetime(),
    sentAt: p.datetime().nullable(),
    expiresAt: p.datetime().index(),
    closedAt: p.datetime().nullable(),
    expiresInDays: p.integer(),
  }),
  // Declared so that schema diffs know it; the SQL is valid on both dialects.
  uniques: [
    {
      name: 'delivery_open_folder_unique',
      expression: `create unique index "delivery_open_folder_unique" on "delivery" ("sender_id", "folder_key") where "state" = 'open' and "folder_key" is not null`,
    },
  ],
});
/** A delivery row. */
export type Delivery = InferEntity<typeof DeliverySchema>;

/** DeliveryRecipient: one recipient address of a delivery and its state. */
export const DeliveryRecipientSchema = defineEntity({
  name: 'DeliveryRecipient',
  tableName: 'delivery_recipient',
  properties: (p) => ({
    id: p.uuid().primary(),
    deliveryId: p.manyToOne(DeliverySchema).mapToPk().fieldName('delivery_id').deleteRule('cascade').index(),
    email: p.string().length(320).index(),
    /** Null only for level-1 link recipients without an account. */
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').nullable().index(),
    state: p.enum([...RECIPIENT_STATES]).index(),
    updatedAt: p.datetime(),
    releasedAt: p.datetime().nullable(),
    releasedKeyId: p.string().length(36).nullable(),
    releasedFingerprint: p.string().length(64).nullable(),
    downloadedAt: p.datetime().nullable(),
    /** Level 1: hash of this recipient's download link token. */
    linkTokenHash: p.string().length(64).nullable().unique(),
  }),
  uniques: [{ properties: ['deliveryId', 'email'] }],
});
/** A delivery recipient row. */
export type DeliveryRecipient = InferEntity<typeof DeliveryRecipientSchema>;

/** DeliveryFile: one encrypted file (or the level-4 message) of a delivery; the ciphertext lives in the blob store. */
export const DeliveryFileSchema = defineEntity({
  name: 'DeliveryFile',
  tableName: 'delivery_file',
  properties: (p) => ({
    id: p.uuid().primary(),
    deliveryId: p.manyToOne(DeliverySchema).mapToPk().fieldName('delivery_id').deleteRule('cascade').index(),
    /** `file` or `message`. */
    kind: p.string().length(16),
    name: p.string().length(1024),
    /** Plaintext size in bytes. */
    size: p.bigint('number'),
    blobKey: p.string().length(128).nullable(),
    /** Size of the stored ciphertext in bytes. */
    blobSize: p.bigint('number'),
    /** Stored under a temporary name (`*.filepart`, dotfile...): never delivered unless renamed. */
    temp: p.boolean().default(false),
    createdAt: p.datetime(),
    /**
     * Level 3/4 files uploaded over WebDAV: the file's session key sealed under the
     * key-encryption key, so the sender's client can read its own unsent file back for a short
     * time. Wiped when the delivery is sent or `readbackUntil` has passed.
     */
    readbackKey: p.blob().nullable(),
    readbackUntil: p.datetime().nullable(),
  }),
  uniques: [{ properties: ['deliveryId', 'kind', 'name'] }],
});
/** A delivery file row. */
export type DeliveryFile = InferEntity<typeof DeliveryFileSchema>;

/** KeyWrap: a PKESK packet wrapping one file's session key to one SecuPass key. */
export const KeyWrapSchema = defineEntity({
  name: 'KeyWrap',
  tableName: 'key_wrap',
  properties: (p) => ({
    id: p.uuid().primary(),
    fileId: p.manyToOne(DeliveryFileSchema).mapToPk().fieldName('file_id').deleteRule('cascade').index(),
    keyId: p.manyToOne(SecuPassKeySchema).mapToPk().fieldName('key_id').deleteRule('cascade').index(),
    pkesk: p.blob(),
    createdAt: p.datetime(),
  }),
  uniques: [{ properties: ['fileId', 'keyId'] }],
});
/** A key wrap row. */
export type KeyWrap = InferEntity<typeof KeyWrapSchema>;

/** SshKey: a public key that authenticates its account over SFTP. */
export const SshKeySchema = defineEntity({
  name: 'SshKey',
  tableName: 'ssh_key',
  properties: (p) => ({
    id: p.uuid().primary(),
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').deleteRule('cascade').index(),
    /** OpenSSH SHA256 fingerprint (`SHA256:...`). */
    fingerprint: p.string().length(80).unique(),
    algorithm: p.string().length(40),
    /** The key in OpenSSH one-line format (type and base64 blob). */
    publicKey: p.text(),
    comment: p.string().length(200).nullable(),
    createdAt: p.datetime(),
    lastUsedAt: p.datetime().nullable(),
  }),
});
/** An SSH key row. */
export type SshKey = InferEntity<typeof SshKeySchema>;

/** OutboxMessage: a notification mail written with the state change and sent by the worker. */
export const OutboxMessageSchema = defineEntity({
  name: 'OutboxMessage',
  tableName: 'outbox_message',
  properties: (p) => ({
    id: p.uuid().primary(),
    template: p.string().length(64),
    to: p.string().length(320),
    /** Template parameters, AES-256-GCM under a key derived from the key-encryption key; emptied once sent. */
    payload: p.blob().nullable(),
    state: p.enum([...OUTBOX_STATES]).index(),
    attempts: p.integer(),
    nextAttemptAt: p.datetime().index(),
    claimedBy: p.string().length(64).nullable(),
    claimedUntil: p.datetime().nullable(),
    lastError: p.string().length(1000).nullable(),
    createdAt: p.datetime(),
    sentAt: p.datetime().nullable(),
  }),
});
/** An outbox row. */
export type OutboxMessage = InferEntity<typeof OutboxMessageSchema>;

/** Notification: something shown to an account in the UI / `GET /api/v1/notifications`. */
export const NotificationSchema = defineEntity({
  name: 'Notification',
  tableName: 'notification',
  properties: (p) => ({
    id: p.uuid().primary(),
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').deleteRule('cascade').index(),
    kind: p.string().length(64),
    deliveryId: p.uuid().nullable(),
    data: p.json<Record<string, unknown>>(),
    createdAt: p.datetime(),
    readAt: p.datetime().nullable(),
  }),
});
/** A notification row. */
export type Notification = InferEntity<typeof NotificationSchema>;

/** AuditEvent: one state change, hash-chained to the one before. */
export const AuditEventSchema = defineEntity({
  name: 'AuditEvent',
  tableName: 'audit_event',
  properties: (p) => ({
    seq: p.bigint('number').primary().autoincrement(false),
    at: p.datetime(),
    actorId: p.uuid().nullable(),
    actor: p.string().length(320).nullable(),
    action: p.string().length(64).index(),
    targetType: p.string().length(32).nullable(),
    targetId: p.string().length(64).nullable().index(),
    data: p.json<Record<string, unknown>>(),
    ip: p.string().length(100).nullable(),
    prevHash: p.string().length(64),
    hash: p.string().length(64),
  }),
});
/** An audit event row. */
export type AuditEvent = InferEntity<typeof AuditEventSchema>;

/** AuditHead: the single row holding the chain's last sequence number and hash (locked while appending). */
export const AuditHeadSchema = defineEntity({
  name: 'AuditHead',
  tableName: 'audit_head',
  properties: (p) => ({
    id: p.integer().primary().autoincrement(false),
    seq: p.bigint('number'),
    hash: p.string().length(64),
  }),
});
/** The audit head row. */
export type AuditHead = InferEntity<typeof AuditHeadSchema>;

/** RateCounter: a fixed-window counter (login failures, server-side releases) shared by all instances. */
export const RateCounterSchema = defineEntity({
  name: 'RateCounter',
  tableName: 'rate_counter',
  properties: (p) => ({
    key: p.string().length(400).primary(),
    /** Start of the current window, epoch milliseconds. */
    windowStart: p.bigint('number'),
    count: p.integer(),
  }),
});
/** A rate counter row. */
export type RateCounter = InferEntity<typeof RateCounterSchema>;

/**
 * DavLock: a WebDAV lock on a path of one account's view of the tree (the tree is per account,
 * so the same path of two accounts names two resources). Stored so that locks survive a
 * restart and hold across instances.
 */
export const DavLockSchema = defineEntity({
  name: 'DavLock',
  tableName: 'dav_lock',
  properties: (p) => ({
    id: p.uuid().primary(),
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').deleteRule('cascade').index(),
    /** Canonical tree path of the locked resource. */
    path: p.string().length(2048),
    /** The lock token without the `opaquelocktoken:` scheme. */
    token: p.string().length(64).unique(),
    /** `exclusive` or `shared`. */
    scope: p.string().length(16),
    /** 0 or -1 (infinity). */
    depth: p.integer(),
    /** The client's `<owner>` XML, as sent (bounded). */
    owner: p.text().nullable(),
    timeoutSeconds: p.integer(),
    createdAt: p.datetime(),
    expiresAt: p.datetime().index(),
  }),
  indexes: [{ properties: ['accountId', 'path'] }],
});
/** A WebDAV lock row. */
export type DavLock = InferEntity<typeof DavLockSchema>;

/** DavProperty: a dead property set by PROPPATCH on a path of one account's view of the tree. */
export const DavPropertySchema = defineEntity({
  name: 'DavProperty',
  tableName: 'dav_property',
  properties: (p) => ({
    id: p.uuid().primary(),
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').deleteRule('cascade'),
    path: p.string().length(2048),
    /** `{namespace}localName`. */
    name: p.string().length(1024),
    /** The property's value as XML (its children), bounded. */
    value: p.text(),
    updatedAt: p.datetime(),
  }),
  uniques: [{ properties: ['accountId', 'path', 'name'] }],
});
/** A dead property row. */
export type DavProperty = InferEntity<typeof DavPropertySchema>;

/**
 * DaemonInstance: one running daemon process. Its heartbeat tells the others it is alive; the
 * protocol sessions and folder activity of an instance whose heartbeat stopped are void.
 */
export const DaemonInstanceSchema = defineEntity({
  name: 'DaemonInstance',
  tableName: 'daemon_instance',
  properties: (p) => ({
    id: p.string().length(100).primary(),
    startedAt: p.datetime(),
    heartbeatAt: p.datetime().index(),
  }),
});
/** A daemon instance row. */
export type DaemonInstance = InferEntity<typeof DaemonInstanceSchema>;

/** ProtocolSession: an SFTP session open on some instance (session-end sending counts them across instances). */
export const ProtocolSessionSchema = defineEntity({
  name: 'ProtocolSession',
  tableName: 'protocol_session',
  properties: (p) => ({
    /** The protocol's session id. */
    id: p.string().length(64).primary(),
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').deleteRule('cascade').index(),
    instanceId: p.manyToOne(DaemonInstanceSchema).mapToPk().fieldName('instance_id').deleteRule('cascade').index(),
    openedAt: p.datetime(),
  }),
});
/** A protocol session row. */
export type ProtocolSession = InferEntity<typeof ProtocolSessionSchema>;

/** Kinds of folder activity: a folder written by an account's sessions, or an upload open in it. */
export const FOLDER_ACTIVITY_KINDS = ['touched', 'transfer'] as const;

/**
 * FolderActivity: what the account's protocol sessions did to tree folders, on any instance:
 * `touched` rows are sent when the account's last session ends cleanly; `transfer` rows are
 * uploads in progress (a folder is not sent while one is open).
 */
export const FolderActivitySchema = defineEntity({
  name: 'FolderActivity',
  tableName: 'folder_activity',
  properties: (p) => ({
    id: p.uuid().primary(),
    accountId: p.manyToOne(AccountSchema).mapToPk().fieldName('account_id').deleteRule('cascade'),
    folderKey: p.string().length(700),
    kind: p.enum([...FOLDER_ACTIVITY_KINDS]),
    instanceId: p.manyToOne(DaemonInstanceSchema).mapToPk().fieldName('instance_id').deleteRule('cascade').index(),
    at: p.datetime(),
  }),
  indexes: [{ properties: ['accountId', 'folderKey'] }],
});
/** A folder activity row. */
export type FolderActivity = InferEntity<typeof FolderActivitySchema>;

/** Every entity schema, for the ORM configuration. */
export const ALL_ENTITIES = [
  AccountSchema,
  SessionSchema,
  ApiTokenSchema,
  AccountTokenSchema,
  SecuPassKeySchema,
  DeliverySchema,
  DeliveryRecipientSchema,
  DeliveryFileSchema,
  KeyWrapSchema,
  SshKeySchema,
  OutboxMessageSchema,
  NotificationSchema,
  AuditEventSchema,
  AuditHeadSchema,
  RateCounterSchema,
  DavLockSchema,
  DavPropertySchema,
  DaemonInstanceSchema,
  ProtocolSessionSchema,
  FolderActivitySchema,
];
