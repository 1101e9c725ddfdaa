/**
 * The OpenAPI 3.1 description of the JSON API under /api/v1, served at GET /api/v1/openapi.json.
 * Written by hand next to the routes; daemon/test/openapi.test.ts checks it against the routers
 * and against real responses of every route, so a change to either side shows up there.
 */
import pkg from '../../../../package.json' with { type: 'json' };
import { SCOPES, type Scope, type Via } from '../../core/context.ts';
import type { DeliveryView } from '../../core/deliveries.ts';
import { ERROR_CODES, type ErrorCode } from '../../core/errors.ts';
import { ACCOUNT_STATES, DELIVERY_STATES, RECIPIENT_STATES, ROLES } from '../../store/entities.ts';
import { HTTP_STATUS } from './errors.ts';

// ---------------------------------------------------------------- OpenAPI 3.1 types (what this document uses)

/** A JSON Schema (draft 2020-12, the OpenAPI 3.1 dialect). */
export type SchemaObject = { [keyword: string]: unknown };

/** `{"$ref": "#/components/..."}` */
export interface ReferenceObject {
  $ref: string;
}

/** A media type of a request or response body. Binary bodies carry no JSON schema to validate. */
export interface MediaTypeObject {
  schema?: SchemaObject;
}

/** A response header. */
export interface HeaderObject {
  description: string;
  required?: boolean;
  schema: SchemaObject;
}

/** A response. */
export interface ResponseObject {
  description: string;
  headers?: Record<string, HeaderObject>;
  content?: Record<string, MediaTypeObject>;
}

/** A parameter. */
export interface ParameterObject {
  name: string;
  in: 'path' | 'query' | 'header';
  description: string;
  required?: boolean;
  schema: SchemaObject;
}

/** A request body. */
export interface RequestBodyObject {
  description?: string;
  required: boolean;
  content: Record<string, MediaTypeObject>;
}

/** Alternatives: any one of them authorizes; the listed names are the API scopes the operation needs. */
export type SecurityRequirementObject = Record<string, string[]>;

/** An operation. */
export interface OperationObject {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  security: SecurityRequirementObject[];
  parameters?: Array<ParameterObject | ReferenceObject>;
  requestBody?: RequestBodyObject;
  responses: Record<string, ResponseObject | ReferenceObject>;
}

/** The HTTP methods the API uses. */
export const HTTP_METHODS = ['get', 'put', 'post', 'delete'] as const;
/** An HTTP method (lower case, as OpenAPI spells it). */
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** The operations of one path. */
export type PathItemObject = { [M in HttpMethod]?: OperationObject };

/** The document. */
export interface OpenApiDocument {
  openapi: '3.1.0';
  jsonSchemaDialect: string;
  info: { title: string; version: string; description: string; license: { name: string; identifier?: string; url?: string } };
  servers: Array<{ url: string; description: string }>;
  tags: Array<{ name: string; description: string }>;
  security: SecurityRequirementObject[];
  paths: Record<string, PathItemObject>;
  components: {
    schemas: Record<string, SchemaObject>;
    responses: Record<string, ResponseObject>;
    parameters: Record<string, ParameterObject>;
    securitySchemes: Record<string, { type: 'http'; scheme: 'bearer'; description: string }>;
  };
}

// ---------------------------------------------------------------- building blocks

const schemaRef = (name: string): SchemaObject => ({ $ref: `#/components/schemas/${name}` });
const responseRef = (name: string): ReferenceObject => ({ $ref: `#/components/responses/${name}` });
const json = (schema: SchemaObject): Record<string, MediaTypeObject> => ({ 'application/json': { schema } });

/** An object with exactly these properties (all required unless listed in `optional`). */
function object(properties: Record<string, SchemaObject>, optional: string[] = [], extra: SchemaObject = {}): SchemaObject {
  return { type: 'object', required: Object.keys(properties).filter((k) => !optional.includes(k)), properties, additionalProperties: false, ...extra };
}

const UUID: SchemaObject = { type: 'string', format: 'uuid' };
const EMAIL: SchemaObject = { type: 'string', format: 'email' };
const DATE_TIME: SchemaObject = { type: 'string', format: 'date-time' };
const DATE_TIME_OR_NULL: SchemaObject = { type: ['string', 'null'], format: 'date-time' };
const STRING_OR_NULL: SchemaObject = { type: ['string', 'null'] };
const COUNT: SchemaObject = { type: 'integer', minimum: 0 };
const OPENPGP_FINGERPRINT: SchemaObject = { type: 'string', pattern: '^[0-9a-f]{40}$', description: 'v4 OpenPGP fingerprint, 40 lower-case hex digits' };
const OPENPGP_KEY_ID: SchemaObject = { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'key id of the encryption subkey (16 hex digits), as found in PKESK packets' };
const PUBLIC_KEY: SchemaObject = { type: 'string', pattern: '^-----BEGIN PGP PUBLIC KEY BLOCK-----', description: 'armored OpenPGP public key' };
const PRIVATE_KEY: SchemaObject = { type: 'string', pattern: '^-----BEGIN PGP PRIVATE KEY BLOCK-----', description: 'armored OpenPGP private key, encrypted under the SecuPass' };
const BASE64: SchemaObject = { type: 'string', pattern: '^[A-Za-z0-9+/]+={0,2}$', contentEncoding: 'base64' };
const token = (prefix: string): SchemaObject => ({ type: 'string', pattern: `^${prefix}_[A-Za-z0-9_-]{43}$` });

/** The protocols a delivery can come in through. */
const VIAS = ['api', 'sftp', 'webdav', 'ui', 'cli', 'system'] as const satisfies readonly Via[];
const DELIVERY_ROLES = ['sender', 'owner', 'recipient', 'admin'] as const satisfies ReadonlyArray<DeliveryView['role']>;
/** Compile-time: the lists above name every value of their types. */
type Missing<All, Listed> = Exclude<All, Listed> extends never ? true : never;
const _everyVia: Missing<Via, (typeof VIAS)[number]> = true;
const _everyRole: Missing<DeliveryView['role'], (typeof DELIVERY_ROLES)[number]> = true;
void [_everyVia, _everyRole];

/** Kinds of notifications the daemon records. */
const NOTIFICATION_KINDS = ['release_needed', 'delivery_available', 'downloaded', 'access_lost', 'secupass_reset', 'unreleasable', 'revoked'];

/** Security: any session (`[]`) or the session's role / the API token holding one of `scopes`. */
function needs(...scopes: Scope[]): SecurityRequirementObject[] {
  if (scopes.length === 0) return [{ session: [] }, { apiToken: [] }];
  return [...scopes.map((s) => ({ session: [s] })), ...scopes.map((s) => ({ apiToken: [s] }))];
}
const PUBLIC: SecurityRequirementObject[] = [];

// ---------------------------------------------------------------- errors

const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

/** Error responses by status (every status of HTTP_STATUS; the test checks): component name and title. */
const ERROR_RESPONSES: Array<{ status: number; name: string; title: string }> = [
  { status: 400, name: 'BadRequest', title: 'The request is malformed or a field is not acceptable' },
  { status: 401, name: 'Unauthorized', title: 'No valid credentials' },
  { status: 403, name: 'Forbidden', title: 'The caller may not do this' },
  { status: 404, name: 'NotFound', title: 'No such object (or not visible to the caller)' },
  { status: 409, name: 'Conflict', title: 'The object is not in a state that allows this' },
  { status: 410, name: 'Gone', title: 'The delivery can no longer be opened' },
  { status: 413, name: 'PayloadTooLarge', title: 'A body or file exceeds its size limit' },
  { status: 423, name: 'Locked', title: 'Locked' },
  { status: 429, name: 'TooManyRequests', title: 'Too many attempts' },
  { status: 500, name: 'InternalError', title: 'An internal error; see the daemon log' },
  { status: 503, name: 'Unavailable', title: 'The service is shutting down or a dependency is unreachable' },
];

function codesFor(status: number): ErrorCode[] {
  return ERROR_CODE_LIST.filter((c) => HTTP_STATUS[c] === status);
}

function errorResponse(status: number, title: string): ResponseObject {
  const codes = codesFor(status);
  const response: ResponseObject = {
    description: `${title}. Codes:\n\n${codes.map((c) => `- \`${c}\`: ${ERROR_CODES[c]}`).join('\n')}`,
    content: json({
      $ref: '#/components/schemas/Error',
      type: 'object',
      properties: { error: { type: 'object', properties: { code: { enum: codes } } } },
    }),
  };
  if (status === 401) response.headers = { 'WWW-Authenticate': { description: '`Bearer realm="sealdrop"` (for SEALDROP_E_UNAUTHENTICATED)', schema: { type: 'string' } } };
  if (status === 429) response.headers = { 'Retry-After': { description: 'Seconds until another attempt is counted', required: true, schema: { type: 'integer', minimum: 0 } } };
  return response;
}

/** The error responses of an operation: these statuses, and 500 (any operation can fail inside). */
function errors(...statuses: number[]): Record<string, ReferenceObject> {
  const out: Record<string, ReferenceObject> = {};
  for (const status of [...statuses, 500].sort()) {
    const spec = ERROR_RESPONSES.find((r) => r.status === status);
    if (!spec) throw new Error(`no error response for ${status}`);
    out[String(status)] = responseRef(spec.name);
  }
  return out;
}
/** Error statuses of an authenticated operation (401 included). */
const authErrors = (...statuses: number[]) => errors(401, ...statuses);

// ---------------------------------------------------------------- schemas

const schemas: Record<string, SchemaObject> = {
  ErrorCode: {
    description: 'A stable error code; codes are never reused for another meaning.',
    enum: ERROR_CODE_LIST,
  },
  Error: object(
    {
      error: object({
        code: schemaRef('ErrorCode'),
        message: { type: 'string', minLength: 1, description: 'human-readable; may change between versions' },
      }),
    },
    [],
    { description: 'The body of every error response.' },
  ),
  Account: object(
    {
      id: UUID,
      email: EMAIL,
      role: { enum: [...ROLES] },
      state: { enum: [...ACCOUNT_STATES] },
      owner: {
        type: ['string', 'null'],
        format: 'email',
        description: 'service accounts: the e-mail address of the member who owns it (null for other roles)',
      },
      createdAt: DATE_TIME,
      registeredAt: DATE_TIME_OR_NULL,
      secupassActive: { type: 'boolean', description: 'present in GET /me and GET /admin/accounts' },
    },
    ['secupassActive'],
  ),
  ApiToken: object({
    id: UUID,
    name: { type: 'string', minLength: 1, maxLength: 100 },
    scopes: { type: 'array', items: schemaRef('Scope') },
    createdAt: DATE_TIME,
    expiresAt: DATE_TIME,
    lastUsedAt: DATE_TIME_OR_NULL,
    revokedAt: DATE_TIME_OR_NULL,
  }),
  Scope: {
    description: 'send (create and upload), release (bind deliveries to recipients), fetch (list and download), admin.',
    enum: [...SCOPES],
  },
  SecuPassKey: object({
    id: UUID,
    fingerprint: OPENPGP_FINGERPRINT,
    encryptionKeyId: OPENPGP_KEY_ID,
    publicKey: PUBLIC_KEY,
    origin: { enum: ['server', 'client'], description: 'generated on the server from a SecuPass, or made by the client' },
    createdAt: DATE_TIME,
    createdFrom: { type: ['string', 'null'], description: 'IP address the key was activated from' },
  }),
  SecuPassKeyWithPrivate: object({
    id: UUID,
    fingerprint: OPENPGP_FINGERPRINT,
    encryptionKeyId: OPENPGP_KEY_ID,
    publicKey: PUBLIC_KEY,
    origin: { enum: ['server', 'client'] },
    createdAt: DATE_TIME,
    createdFrom: STRING_OR_NULL,
    privateKey: PRIVATE_KEY,
  }),
  SshKey: object({
    id: UUID,
    fingerprint: { type: 'string', pattern: '^SHA256:[A-Za-z0-9+/]{43}$', description: "OpenSSH's SHA-256 fingerprint" },
    algorithm: { type: 'string', examples: ['ssh-ed25519'] },
    comment: STRING_OR_NULL,
    createdAt: DATE_TIME,
    lastUsedAt: DATE_TIME_OR_NULL,
  }),
  File: object({
    id: UUID,
    name: { type: 'string', minLength: 1, description: 'file name; a path (`folder/file`) for deliveries made through SFTP or WebDAV folders' },
    size: { ...COUNT, description: 'plaintext size in bytes' },
    createdAt: DATE_TIME,
  }),
  Recipient: object({
    id: UUID,
    email: EMAIL,
    state: { enum: [...RECIPIENT_STATES] },
    key: {
      description: "the recipient's active SecuPass key, if any",
      anyOf: [{ type: 'null' }, object({ fingerprint: OPENPGP_FINGERPRINT, createdAt: DATE_TIME })],
    },
    releasedAt: DATE_TIME_OR_NULL,
    releasedFingerprint: { anyOf: [{ type: 'null' }, OPENPGP_FINGERPRINT] },
    downloadedAt: DATE_TIME_OR_NULL,
  }),
  Delivery: object({
    id: UUID,
    subject: { type: 'string', minLength: 1 },
    level: { enum: [1, 2, 3, 4], description: '1: link, 2: login, 3: SecuPass (files end-to-end), 4: SecuPass (files and message end-to-end)' },
    state: { enum: [...DELIVERY_STATES] },
    origin: { enum: [...VIAS], description: 'the protocol it was made through' },
    dropFolder: STRING_OR_NULL,
    sender: EMAIL,
    owner: { ...EMAIL, description: 'whose key holds the wraps and who releases: the sender, or the drop folder owner' },
    createdAt: DATE_TIME,
    sentAt: DATE_TIME_OR_NULL,
    expiresAt: DATE_TIME,
    hasMessage: { type: 'boolean' },
    files: { type: 'array', items: schemaRef('File') },
    recipients: { type: 'array', items: schemaRef('Recipient'), description: 'every recipient for the sender and owner; only their own row for a recipient' },
    role: { enum: [...DELIVERY_ROLES], description: "the caller's role in this delivery" },
  }),
  EncryptionKey: object({
    email: EMAIL,
    role: { enum: ['owner', 'recipient'] },
    fingerprint: OPENPGP_FINGERPRINT,
    publicKey: PUBLIC_KEY,
  }),
  ReleaseMaterial: object(
    {
      deliveryId: UUID,
      ownerKey: object({ fingerprint: OPENPGP_FINGERPRINT, encryptionKeyId: OPENPGP_KEY_ID }),
      items: {
        type: 'array',
        items: object({
          fileId: UUID,
          kind: { enum: ['file', 'message'] },
          name: { type: ['string', 'null'], description: 'null for the message' },
          ownerWrap: { anyOf: [{ type: 'null' }, { ...BASE64, description: "the item's PKESK packet for the owner's key, base64" }] },
        }),
      },
      recipients: {
        type: 'array',
        items: object({
          recipientId: UUID,
          email: EMAIL,
          state: { const: 'awaiting_release' },
          fingerprint: OPENPGP_FINGERPRINT,
          encryptionKeyId: OPENPGP_KEY_ID,
          publicKey: PUBLIC_KEY,
          keyCreatedAt: DATE_TIME,
          keyCreatedFrom: STRING_OR_NULL,
          registeredAt: DATE_TIME_OR_NULL,
          registeredFrom: STRING_OR_NULL,
          lastReleasedFingerprint: { anyOf: [{ type: 'null' }, OPENPGP_FINGERPRINT], description: 'the key this owner last released to at this address' },
          keyChanged: { type: 'boolean', description: 'the key differs from lastReleasedFingerprint' },
        }),
      },
    },
    [],
    { description: 'What a client needs to release on its own device.' },
  ),
  Notification: object({
    id: UUID,
    kind: { enum: NOTIFICATION_KINDS },
    deliveryId: { anyOf: [{ type: 'null' }, UUID] },
    data: { type: 'object', description: 'facts depending on the kind (subject, recipient, ...)' },
    createdAt: DATE_TIME,
    readAt: DATE_TIME_OR_NULL,
  }),
  LinkDelivery: object(
    {
      id: UUID,
      subject: { type: 'string' },
      sender: EMAIL,
      recipient: EMAIL,
      expiresAt: DATE_TIME,
      message: STRING_OR_NULL,
      files: { type: 'array', items: schemaRef('File') },
    },
    [],
    { description: 'A level-1 delivery as its link shows it.' },
  ),
};

// ---------------------------------------------------------------- parameters and bodies

const parameters: Record<string, ParameterObject> = {
  deliveryId: { name: 'id', in: 'path', required: true, description: 'delivery id (anything else is 404)', schema: UUID },
  accountEmail: { name: 'email', in: 'path', required: true, description: "the account's e-mail address (URL-encoded)", schema: EMAIL },
  linkToken: { name: 'token', in: 'path', required: true, description: 'the link token from the delivery mail', schema: token('sdl') },
  fileId: { name: 'fileId', in: 'path', required: true, description: 'file id', schema: UUID },
};
const param = (name: keyof typeof parameters): ReferenceObject => ({ $ref: `#/components/parameters/${name}` });

const jsonBody = (schema: SchemaObject, description?: string, required = true): RequestBodyObject => ({
  ...(description ? { description } : {}),
  required,
  content: json(schema),
});

/** Request bodies: fields not listed are ignored by the server. */
const PASSWORD: SchemaObject = { type: 'string', minLength: 1, maxLength: 1024 };

const NO_STORE: HeaderObject = { description: '`no-store`: secrets or personal data', required: true, schema: { const: 'no-store' } };
const CONTENT_DISPOSITION: HeaderObject = { description: "`attachment; filename=\"...\"; filename*=UTF-8''...` (`.pgp` appended for OpenPGP files)", required: true, schema: { type: 'string' } };
const binaryHeaders: Record<string, HeaderObject> = {
  'Content-Disposition': CONTENT_DISPOSITION,
  'Cache-Control': NO_STORE,
  'Content-Length': { description: 'exact size of the body', schema: { type: 'integer', minimum: 0 } },
};
const PGP: MediaTypeObject = { schema: { type: 'string', contentMediaType: 'application/pgp-encrypted', description: 'a binary OpenPGP message (PKESK for the caller || SEIPDv1), opens with `gpg --decrypt`' } };
const OCTETS: MediaTypeObject = { schema: { type: 'string', contentMediaType: 'application/octet-stream', description: 'the plaintext file' } };

const ok = (description: string, schema: SchemaObject, headers?: Record<string, HeaderObject>): ResponseObject => ({ description, ...(headers ? { headers } : {}), content: json(schema) });
const noContent = (description: string): ResponseObject => ({ description });
const wrapped = (key: string, schema: SchemaObject) => object({ [key]: schema });
/** An Account that states whether its SecuPass is active. */
const ACCOUNT_WITH_SECUPASS_FLAG: SchemaObject = { $ref: '#/components/schemas/Account', type: 'object', required: ['secupassActive'] };

// ---------------------------------------------------------------- paths

const paths: Record<string, PathItemObject> = {
  '/openapi.json': {
    get: {
      operationId: 'getOpenApiDocument',
      summary: 'This document',
      tags: ['meta'],
      security: PUBLIC,
      responses: {
        '200': ok('The OpenAPI 3.1 description of this API', {
          type: 'object',
          required: ['openapi', 'info', 'paths', 'components'],
          properties: { openapi: { type: 'string', pattern: '^3\\.1\\.\\d+$' }, info: { type: 'object' }, paths: { type: 'object' }, components: { type: 'object' } },
        }),
        ...errors(),
      },
    },
  },
  '/session': {
    post: {
      operationId: 'login',
      summary: 'Log in',
      description: 'Returns a session bearer token. Failed logins are counted per address; too many lock the address for a while (429).',
      tags: ['session'],
      security: PUBLIC,
      requestBody: jsonBody(object({ email: { type: 'string' }, password: PASSWORD }, [], { additionalProperties: true })),
      responses: {
        '201': ok('Logged in', object({ token: { ...token('sds'), description: 'session bearer token' }, expiresAt: DATE_TIME, account: schemaRef('Account') })),
        ...errors(400, 401, 403, 413, 429),
      },
    },
    delete: {
      operationId: 'logout',
      summary: 'Log out',
      description: 'Ends the session of the bearer token (an API token stays valid; revoke it with DELETE /tokens/{id}).',
      tags: ['session'],
      security: needs(),
      responses: { '204': noContent('Logged out'), ...authErrors() },
    },
  },
  '/registration': {
    post: {
      operationId: 'register',
      summary: 'Register with an invitation token',
      description: 'Sets the login password of an invited account (single-use token from the invitation mail) and activates it.',
      tags: ['session'],
      security: PUBLIC,
      requestBody: jsonBody(object({ token: token('sdi'), password: PASSWORD }, [], { additionalProperties: true })),
      responses: { '201': ok('Registered', wrapped('account', schemaRef('Account'))), ...errors(400, 403, 413) },
    },
  },
  '/password-reset': {
    post: {
      operationId: 'requestPasswordReset',
      summary: 'Mail a password reset link',
      description: 'Answers the same whether or not the address has an account.',
      tags: ['session'],
      security: PUBLIC,
      requestBody: jsonBody(object({ email: { type: 'string' } }, [], { additionalProperties: true })),
      responses: { '202': ok('Accepted', object({ accepted: { const: true } })), ...errors(400, 413) },
    },
  },
  '/password-reset/complete': {
    post: {
      operationId: 'completePasswordReset',
      summary: 'Set a new login password with the reset token',
      description: 'Every session of the account ends; the SecuPass and all deliveries are kept.',
      tags: ['session'],
      security: PUBLIC,
      requestBody: jsonBody(object({ token: token('sdr'), password: PASSWORD }, [], { additionalProperties: true })),
      responses: { '204': noContent('Password changed'), ...errors(400, 403, 413) },
    },
  },
  '/me': {
    get: {
      operationId: 'getMe',
      summary: "The caller's account",
      tags: ['session'],
      security: needs(),
      responses: { '200': ok("The caller's account", wrapped('account', ACCOUNT_WITH_SECUPASS_FLAG)), ...authErrors() },
    },
  },
  '/password': {
    post: {
      operationId: 'changePassword',
      summary: 'Change the login password',
      description: "From a login session only (403 with an API token). The account's other login sessions end; wrong current passwords count towards the address's login lockout (429).",
      tags: ['session'],
      security: needs(),
      requestBody: jsonBody(object({ currentPassword: PASSWORD, newPassword: PASSWORD }, [], { additionalProperties: true })),
      responses: { '204': noContent('Changed'), ...authErrors(400, 403, 413, 429) },
    },
  },
  '/tokens': {
    post: {
      operationId: 'createApiToken',
      summary: 'Create an API token',
      description: 'From a login session only (not with another API token). The token is shown once. `expiresInDays` defaults to 90 (at most `accounts.apiTokenMaxDays`).',
      tags: ['tokens'],
      security: [{ session: [] }],
      requestBody: jsonBody(
        object(
          {
            name: { type: 'string', minLength: 1, maxLength: 100, default: 'api token' },
            scopes: { type: 'array', minItems: 1, items: schemaRef('Scope'), description: 'at most the scopes of the caller\'s role' },
            expiresInDays: { type: 'integer', minimum: 1 },
          },
          ['name', 'expiresInDays'],
          { additionalProperties: true },
        ),
      ),
      responses: {
        '201': ok(
          'Created; `token` is not shown again',
          object({
            token: { ...token('sdt'), description: 'API bearer token' },
            id: UUID,
            name: { type: 'string' },
            scopes: { type: 'array', items: schemaRef('Scope') },
            createdAt: DATE_TIME,
            expiresAt: DATE_TIME,
            lastUsedAt: { type: 'null' },
            revokedAt: { type: 'null' },
          }),
        ),
        ...authErrors(400, 403, 413),
      },
    },
    get: {
      operationId: 'listApiTokens',
      summary: "The caller's API tokens (never the tokens themselves)",
      tags: ['tokens'],
      security: needs(),
      responses: { '200': ok('Tokens, newest first', wrapped('tokens', { type: 'array', items: schemaRef('ApiToken') })), ...authErrors() },
    },
  },
  '/tokens/{id}': {
    delete: {
      operationId: 'revokeApiToken',
      summary: 'Revoke an API token',
      tags: ['tokens'],
      security: needs(),
      parameters: [{ name: 'id', in: 'path', required: true, description: 'token id', schema: UUID }],
      responses: { '204': noContent('Revoked (also if it was already)'), ...authErrors(404) },
    },
  },
  '/invitations/{email}/resend': {
    post: {
      operationId: 'resendInvitation',
      summary: 'Send a fresh invitation',
      description: 'For admins, and for senders of a delivery to that address. Earlier links stay valid until they expire.',
      tags: ['accounts'],
      security: needs(),
      parameters: [{ ...(parameters.accountEmail as ParameterObject), description: 'the invited address (URL-encoded)' }],
      responses: { '202': ok('Sent', object({ sent: { const: true } })), ...authErrors(400, 404, 409) },
    },
  },
  '/notifications': {
    get: {
      operationId: 'listNotifications',
      summary: "The caller's notifications",
      tags: ['notifications'],
      security: needs(),
      parameters: [{ name: 'unread', in: 'query', description: '`true`: unread ones only', schema: { type: 'boolean', default: false } }],
      responses: { '200': ok('At most 200, newest first', wrapped('notifications', { type: 'array', maxItems: 200, items: schemaRef('Notification') })), ...authErrors() },
    },
  },
  '/notifications/read': {
    post: {
      operationId: 'markNotificationsRead',
      summary: 'Mark notifications as read',
      tags: ['notifications'],
      security: needs(),
      requestBody: jsonBody(object({ ids: { type: 'array', items: UUID, description: 'without: all' } }, ['ids'], { additionalProperties: true }), undefined, false),
      responses: { '200': ok('How many were marked', object({ marked: COUNT })), ...authErrors(400, 413) },
    },
  },
  '/secupass': {
    post: {
      operationId: 'activateSecupass',
      summary: 'Activate the SecuPass',
      description:
        '`{secupass}`: the key is generated on the server (if `crypto.serverSideSecupass` allows). `{publicKey, privateKey}`: a v4 key pair made by the client, the private key encrypted under the SecuPass. Deliveries waiting for it move to "awaiting release" and their owners are told.',
      tags: ['secupass'],
      security: [{ session: [] }, { apiToken: ['fetch'] }, { apiToken: ['release'] }],
      requestBody: jsonBody({
        oneOf: [
          object({ secupass: PASSWORD }, [], { additionalProperties: true, title: 'server-side key' }),
          object({ publicKey: PUBLIC_KEY, privateKey: PRIVATE_KEY }, [], { additionalProperties: true, title: 'client-made key' }),
        ],
      }),
      responses: { '201': ok('Activated', wrapped('key', schemaRef('SecuPassKey'))), ...authErrors(400, 403, 409, 413) },
    },
    put: {
      operationId: 'changeSecupass',
      summary: 'Change the SecuPass (same key, new protection)',
      tags: ['secupass'],
      security: needs(),
      requestBody: jsonBody({
        oneOf: [
          object({ currentSecupass: PASSWORD, newSecupass: PASSWORD }, [], { additionalProperties: true, title: 'on the server' }),
          object({ privateKey: PRIVATE_KEY }, [], { additionalProperties: true, title: 're-encrypted by the client' }),
        ],
      }),
      responses: { '200': ok('Changed', wrapped('key', schemaRef('SecuPassKey'))), ...authErrors(400, 403, 409, 413, 429) },
    },
  },
  '/secupass/key': {
    get: {
      operationId: 'getSecupassKey',
      summary: "The caller's key, with the encrypted private key",
      description: 'For decryption on the client. Sent with `Cache-Control: no-store`.',
      tags: ['secupass'],
      security: needs(),
      responses: { '200': ok('The active key', wrapped('key', schemaRef('SecuPassKeyWithPrivate')), { 'Cache-Control': NO_STORE }), ...authErrors(409) },
    },
  },
  '/ssh-keys': {
    post: {
      operationId: 'addSshKey',
      summary: 'Add an SSH key for SFTP login',
      description: 'From a login session only (403 with an API token): a key is a login of its own, with the full rights of the account over SFTP.',
      tags: ['ssh-keys'],
      security: needs(),
      requestBody: jsonBody(object({ publicKey: { type: 'string', maxLength: 16384, description: 'one OpenSSH public key line (`ssh-ed25519 AAAA... comment`)' } }, [], { additionalProperties: true })),
      responses: { '201': ok('Added', wrapped('key', schemaRef('SshKey'))), ...authErrors(400, 403, 404, 409, 413) },
    },
    get: {
      operationId: 'listSshKeys',
      summary: "The caller's SSH keys",
      tags: ['ssh-keys'],
      security: needs(),
      responses: { '200': ok('Keys, oldest first', wrapped('keys', { type: 'array', items: schemaRef('SshKey') })), ...authErrors() },
    },
  },
  '/ssh-keys/{id}': {
    delete: {
      operationId: 'removeSshKey',
      summary: 'Remove one of the caller\'s SSH keys',
      description: 'From a login session only (403 with an API token).',
      tags: ['ssh-keys'],
      security: needs(),
      parameters: [
        {
          name: 'id',
          in: 'path',
          required: true,
          description: 'key id or its fingerprint (`SHA256:...`, URL-encoded)',
          schema: { type: 'string', anyOf: [{ format: 'uuid' }, { pattern: '^SHA256:' }] },
        },
      ],
      responses: { '204': noContent('Removed'), ...authErrors(403, 404) },
    },
  },
  '/deliveries': {
    post: {
      operationId: 'createDelivery',
      summary: 'Create an open delivery',
      description:
        'Ad hoc (`to`, `subject`, `level`, ...) for members, or into a configured drop folder (`dropFolder`) for its owner, its writers and service accounts of the owner. Level 3/4 needs an owner with an active SecuPass. A level-4 `message` is encrypted at once like a file.',
      tags: ['deliveries'],
      security: needs('send'),
      requestBody: jsonBody({
        oneOf: [
          object(
            {
              to: { type: 'array', minItems: 1, items: EMAIL, description: 'at most `deliveries.maxRecipients`' },
              subject: { type: 'string', minLength: 1 },
              level: { enum: [1, 2, 3, 4] },
              message: { type: ['string', 'null'] },
              expiresInDays: { type: ['integer', 'null'], minimum: 1, description: 'default `deliveries.defaultExpiryDays`, at most `deliveries.maxExpiryDays`' },
              dropFolder: { type: 'null' },
            },
            ['message', 'expiresInDays', 'dropFolder'],
            { additionalProperties: true, title: 'ad hoc' },
          ),
          object(
            {
              dropFolder: { type: 'string', minLength: 1 },
              subject: { type: 'string', minLength: 1, description: "default: the folder's subject template" },
              message: { type: ['string', 'null'] },
            },
            ['subject', 'message'],
            { additionalProperties: true, title: 'into a drop folder' },
          ),
        ],
      }),
      responses: { '201': ok('Created (state `open`)', object({ id: UUID, delivery: schemaRef('Delivery') })), ...authErrors(400, 403, 404, 409, 413) },
    },
    get: {
      operationId: 'listDeliveries',
      summary: "The caller's deliveries",
      description: '`inbox` (received; needs `fetch`) or `outbox` (sent or owned; needs `send` or `release`), newest first.',
      tags: ['deliveries'],
      security: needs('fetch', 'send', 'release'),
      parameters: [
        { name: 'box', in: 'query', description: 'which deliveries', schema: { enum: ['inbox', 'outbox'], default: 'inbox' } },
        { name: 'state', in: 'query', description: 'only this state: a recipient state for `inbox`, a delivery state for `outbox`', schema: { type: 'string' } },
        { name: 'limit', in: 'query', description: 'at most this many', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 200 } },
      ],
      responses: { '200': ok('Deliveries', wrapped('deliveries', { type: 'array', items: schemaRef('Delivery') })), ...authErrors(400, 403) },
    },
  },
  '/deliveries/{id}': {
    get: {
      operationId: 'getDelivery',
      summary: 'One delivery',
      tags: ['deliveries'],
      security: needs(),
      parameters: [param('deliveryId')],
      responses: { '200': ok('The delivery', wrapped('delivery', schemaRef('Delivery'))), ...authErrors(404) },
    },
  },
  '/deliveries/{id}/encryption-keys': {
    get: {
      operationId: 'getEncryptionKeys',
      summary: 'Public keys to encrypt files to on the client',
      description: 'For an open level 3/4 delivery: the owner\'s key and those of recipients whose SecuPass is active now (the others get the files by release).',
      tags: ['deliveries'],
      security: needs('send'),
      parameters: [param('deliveryId')],
      responses: { '200': ok('The keys', wrapped('keys', { type: 'array', minItems: 1, items: schemaRef('EncryptionKey') })), ...authErrors(403, 404, 409) },
    },
  },
  '/deliveries/{id}/files/{fileId}': {
    put: {
      operationId: 'uploadFile',
      summary: 'Upload a file (streamed body)',
      description:
        'The raw body is the file; a file of the same name is replaced. Any content type but `application/pgp-encrypted` is taken as the plain file, encrypted by the server as it streams. `application/pgp-encrypted` (levels 3/4): a whole OpenPGP message encrypted on the client (PKESKs for the owner and the active recipients, see GET /deliveries/{id}/encryption-keys, + SEIPDv1), stored as is.\n\nThe path segment is the new file\'s **name** here (the route calls it `:name`), a file id for GET and DELETE.',
      tags: ['deliveries'],
      security: needs('send'),
      parameters: [
        param('deliveryId'),
        { name: 'fileId', in: 'path', required: true, description: 'the file name (URL-encoded; 1-255 UTF-8 bytes, no `/`, `\\`, control characters)', schema: { type: 'string', minLength: 1 } },
        { name: 'Content-Length', in: 'header', description: 'checked against `deliveries.maxFileBytes` before the body is read', schema: { type: 'integer', minimum: 0 } },
        { name: 'X-Plaintext-Size', in: 'header', description: 'with `application/pgp-encrypted`: the plaintext size to show', schema: { type: 'integer', minimum: 0 } },
      ],
      requestBody: {
        required: true,
        content: {
          'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } },
          'application/pgp-encrypted': { schema: { type: 'string', contentMediaType: 'application/pgp-encrypted' } },
        },
      },
      responses: { '201': ok('Stored', wrapped('file', schemaRef('File'))), ...authErrors(400, 403, 404, 409, 413) },
    },
    get: {
      operationId: 'downloadFile',
      summary: 'Download a file',
      description: 'Levels 3/4: `application/pgp-encrypted` (PKESK for the caller || the stored SEIPDv1 packet). Levels 1/2: the plaintext. The first download by a recipient sends the owner a receipt.',
      tags: ['deliveries'],
      security: needs('fetch'),
      parameters: [param('deliveryId'), param('fileId')],
      responses: {
        '200': { description: 'The file', headers: binaryHeaders, content: { 'application/pgp-encrypted': PGP, 'application/octet-stream': OCTETS } },
        ...authErrors(403, 404, 409, 410),
      },
    },
    delete: {
      operationId: 'removeFile',
      summary: 'Remove a file before sending',
      tags: ['deliveries'],
      security: needs('send'),
      parameters: [param('deliveryId'), param('fileId')],
      responses: { '204': noContent('Removed'), ...authErrors(403, 404, 409) },
    },
  },
  '/deliveries/{id}/message': {
    put: {
      operationId: 'uploadMessage',
      summary: 'Store a level-4 message encrypted on the client',
      description: 'An OpenPGP message like a client-encrypted file (PKESKs for the owner and the active recipients + SEIPDv1), replacing a message given before.',
      tags: ['deliveries'],
      security: needs('send'),
      parameters: [
        param('deliveryId'),
        { name: 'X-Plaintext-Size', in: 'header', description: 'the plaintext size (at most `deliveries.maxMessageBytes`)', schema: { type: 'integer', minimum: 0 } },
      ],
      requestBody: { required: true, content: { 'application/pgp-encrypted': { schema: { type: 'string', contentMediaType: 'application/pgp-encrypted' } } } },
      responses: { '200': ok('Stored', wrapped('delivery', schemaRef('Delivery'))), ...authErrors(400, 403, 404, 409, 413) },
    },
    get: {
      operationId: 'getMessage',
      summary: 'The message of a delivery',
      description: 'Level 4: an OpenPGP file (`message.txt.pgp`). Levels 1-3: JSON `{message}` (null if none).',
      tags: ['deliveries'],
      security: needs('fetch'),
      parameters: [param('deliveryId')],
      responses: {
        '200': {
          description: 'The message',
          headers: { 'Cache-Control': NO_STORE, 'Content-Disposition': { ...CONTENT_DISPOSITION, required: false, description: `level 4: ${CONTENT_DISPOSITION.description}` } },
          content: { 'application/json': { schema: object({ message: STRING_OR_NULL }) }, 'application/pgp-encrypted': PGP },
        },
        ...authErrors(403, 404, 409, 410),
      },
    },
  },
  '/deliveries/{id}/send': {
    post: {
      operationId: 'sendDelivery',
      summary: 'Send an open delivery',
      description: 'Recipients without an account are invited; each gets the state its account allows and one mail.',
      tags: ['deliveries'],
      security: needs('send'),
      parameters: [param('deliveryId')],
      responses: { '200': ok('Sent', wrapped('delivery', schemaRef('Delivery'))), ...authErrors(403, 404, 409) },
    },
  },
  '/deliveries/{id}/revoke': {
    post: {
      operationId: 'revokeDelivery',
      summary: 'Withdraw a delivery; its ciphertext is deleted',
      tags: ['deliveries'],
      security: needs('send'),
      parameters: [param('deliveryId')],
      responses: { '200': ok('Revoked', wrapped('delivery', schemaRef('Delivery'))), ...authErrors(403, 404, 409) },
    },
  },
  '/deliveries/{id}/release': {
    post: {
      operationId: 'releaseDelivery',
      summary: 'Release server-side to every recipient awaiting release',
      description: "The owner's SecuPass unlocks the owner's key for this request only. Wrong SecuPass attempts are counted (429 when too many).",
      tags: ['release'],
      security: needs('release'),
      parameters: [param('deliveryId')],
      requestBody: jsonBody(object({ secupass: PASSWORD }, [], { additionalProperties: true })),
      responses: { '200': ok('Released', wrapped('delivery', schemaRef('Delivery'))), ...authErrors(400, 403, 404, 409, 410, 413, 429) },
    },
  },
  '/deliveries/{id}/release-material': {
    get: {
      operationId: 'getReleaseMaterial',
      summary: 'What a client-side release needs',
      description: "The owner's wraps per item and, per recipient awaiting release, the public key, fingerprint, registration facts and `keyChanged`. Sent with `Cache-Control: no-store`.",
      tags: ['release'],
      security: needs('release'),
      parameters: [param('deliveryId')],
      responses: { '200': ok('The material', schemaRef('ReleaseMaterial'), { 'Cache-Control': NO_STORE }), ...authErrors(403, 404, 409, 410) },
    },
  },
  '/deliveries/{id}/wraps': {
    post: {
      operationId: 'addWraps',
      summary: 'Store wraps made on the client (client-side release)',
      description: "Per recipient awaiting release: its current key's fingerprint and one v3 PKESK packet (base64) addressed to that key for each item.",
      tags: ['release'],
      security: needs('release'),
      parameters: [param('deliveryId')],
      requestBody: jsonBody(
        object(
          {
            wraps: {
              type: 'array',
              minItems: 1,
              items: object(
                {
                  recipientId: UUID,
                  fingerprint: OPENPGP_FINGERPRINT,
                  items: { type: 'array', items: object({ fileId: UUID, pkesk: { ...BASE64, maxLength: 4096 } }, [], { additionalProperties: true }) },
                },
                [],
                { additionalProperties: true },
              ),
            },
          },
          [],
          { additionalProperties: true },
        ),
      ),
      responses: { '200': ok('Released', wrapped('delivery', schemaRef('Delivery'))), ...authErrors(400, 403, 404, 409, 410, 413) },
    },
  },
  '/links/{token}': {
    get: {
      operationId: 'getLinkDelivery',
      summary: 'Level 1: the delivery behind a link',
      tags: ['links'],
      security: PUBLIC,
      parameters: [param('linkToken')],
      responses: { '200': ok('The delivery', wrapped('delivery', schemaRef('LinkDelivery')), { 'Cache-Control': NO_STORE }), ...errors(400, 410) },
    },
  },
  '/links/{token}/files/{fileId}': {
    get: {
      operationId: 'downloadLinkFile',
      summary: 'Level 1: download a file through its link',
      description: "The downloader's e-mail address is required and logged.",
      tags: ['links'],
      security: PUBLIC,
      parameters: [param('linkToken'), param('fileId'), { name: 'email', in: 'query', required: true, description: "the downloader's e-mail address", schema: EMAIL }],
      responses: { '200': { description: 'The file', headers: binaryHeaders, content: { 'application/octet-stream': OCTETS } }, ...errors(400, 404, 410) },
    },
  },
  '/admin/accounts': {
    post: {
      operationId: 'createAccount',
      summary: 'Create an account',
      description: 'With a password it is active at once; without, an invitation mail goes out. Service accounts need an owner (an active member or admin).',
      tags: ['admin'],
      security: needs('admin'),
      requestBody: jsonBody(
        object(
          {
            email: EMAIL,
            role: { enum: [...ROLES], default: 'member' },
            owner: { anyOf: [{ type: 'null' }, EMAIL] },
            password: { anyOf: [{ type: 'null' }, PASSWORD] },
          },
          ['role', 'owner', 'password'],
          { additionalProperties: true },
        ),
      ),
      responses: { '201': ok('Created', object({ account: schemaRef('Account'), invited: { type: 'boolean' } })), ...authErrors(400, 403, 409, 413) },
    },
    get: {
      operationId: 'listAccounts',
      summary: 'Every account',
      tags: ['admin'],
      security: needs('admin'),
      responses: { '200': ok('Accounts by e-mail address', wrapped('accounts', { type: 'array', items: ACCOUNT_WITH_SECUPASS_FLAG })), ...authErrors(403) },
    },
  },
  '/admin/accounts/{email}/disable': {
    post: {
      operationId: 'disableAccount',
      summary: 'Disable an account',
      description: 'Its sessions end and its tokens stop working.',
      tags: ['admin'],
      security: needs('admin'),
      parameters: [param('accountEmail')],
      responses: { '200': ok('Disabled', wrapped('account', schemaRef('Account'))), ...authErrors(400, 403, 404) },
    },
  },
  '/admin/accounts/{email}/enable': {
    post: {
      operationId: 'enableAccount',
      summary: 'Enable a disabled account',
      tags: ['admin'],
      security: needs('admin'),
      parameters: [param('accountEmail')],
      responses: { '200': ok('Enabled', wrapped('account', schemaRef('Account'))), ...authErrors(400, 403, 404) },
    },
  },
  '/admin/accounts/{email}/secupass-reset': {
    post: {
      operationId: 'resetSecupass',
      summary: "Reset an account's SecuPass",
      description: 'The key and every wrap made for it are destroyed: the user loses access to every earlier level 3/4 delivery for good; as an owner, its deliveries awaiting release become unreleasable. Affected senders are told.',
      tags: ['admin'],
      security: needs('admin'),
      parameters: [param('accountEmail')],
      responses: {
        '200': ok('Reset', object({ fingerprint: OPENPGP_FINGERPRINT, accessLost: { ...COUNT, description: 'deliveries the user lost access to' }, unreleasable: { ...COUNT, description: 'recipients of its deliveries that can no longer be released' } })),
        ...authErrors(400, 403, 404, 409),
      },
    },
  },
};

// ---------------------------------------------------------------- the document

/** The OpenAPI 3.1 document of /api/v1. */
export const openApiDocument: OpenApiDocument = {
  openapi: '3.1.0',
  jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
  info: {
    title: 'sealdrop API',
    version: pkg.version,
    description:
      'Encrypted file deliveries (SecuPass process, OpenPGP). Errors are `{"error":{"code":"SEALDROP_E_…","message":"…"}}` with a stable code. Request bodies are JSON objects of at most `http.maxJsonBytes` (fields not listed are ignored), except the streamed uploads.',
    license: { name: 'UNLICENSED' },
  },
  servers: [{ url: '/api/v1', description: 'this daemon' }],
  tags: [
    { name: 'meta', description: 'This document' },
    { name: 'session', description: 'Login sessions, registration, passwords' },
    { name: 'tokens', description: 'API tokens with scopes and an expiry' },
    { name: 'accounts', description: 'Invitations' },
    { name: 'notifications', description: '"release needed", "downloaded", "access lost", ...' },
    { name: 'secupass', description: 'The second passphrase that guards the private key' },
    { name: 'ssh-keys', description: 'Public keys for SFTP login' },
    { name: 'deliveries', description: 'Create, upload, send, list, download, revoke' },
    { name: 'release', description: 'Bind a level 3/4 delivery to recipients (server- or client-side)' },
    { name: 'links', description: 'Level 1: deliveries through their link token, no account' },
    { name: 'admin', description: 'Account administration (admin scope)' },
  ],
  security: needs(),
  paths,
  components: {
    schemas,
    responses: Object.fromEntries(ERROR_RESPONSES.map((r) => [r.name, errorResponse(r.status, r.title)])),
    parameters,
    securitySchemes: {
      session: {
        type: 'http',
        scheme: 'bearer',
        description:
          'A session token (`sds_…`) from POST /session. It holds every scope of the account\'s role (admin: send, release, fetch, admin; member: send, release, fetch; service: send; guest: fetch); the names listed in an operation\'s requirement are the scopes it needs.',
      },
      apiToken: {
        type: 'http',
        scheme: 'bearer',
        description: 'An API token (`sdt_…`) from POST /tokens, holding the scopes it was created with (within those of the role); the names listed in an operation\'s requirement are the scopes it needs.',
      },
    },
  },
};
