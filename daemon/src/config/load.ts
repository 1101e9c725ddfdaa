/**
 * Loading the configuration: YAML file (optional) → environment overrides
 * (`SEALDROP_<SECTION>__<KEY>`, secrets from `..._FILE`) → schema validation → resolved paths.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { configSchema, SECRET_KEYS, TLS_MODES, type Config } from './schema.ts';

/** A PostgreSQL TLS mode. */
export type DatabaseTlsMode = (typeof TLS_MODES)[number];

/** Thrown when the configuration is invalid; `problems` holds one line per problem, each naming its key. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Absolute paths derived from the configuration. */
export interface ResolvedPaths {
  dataDir: string;
  blobDir: string;
  sqlitePath: string;
  mailDir: string;
  kekFile: string;
  hostKeyDir: string;
  /** PostgreSQL: the CA certificates to verify the server with (database.tls.caFile or the URL's sslrootcert). */
  databaseCaFile: string | undefined;
}

/** A validated configuration plus its resolved paths and where it came from. */
export interface LoadedConfig {
  config: Config;
  paths: ResolvedPaths;
  /** The config file read, if any. */
  file: string | undefined;
}

/** Options of loadConfig. */
export interface LoadConfigOptions {
  /** Path of a YAML config file; none means defaults plus environment. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Base for relative paths (default: process.cwd()). */
  cwd?: string;
}

const ENV_PREFIX = 'SEALDROP_';

type Shape = Record<string, z.ZodType>;

/** The object shape behind wrappers (default, prefault, optional, pipe), or undefined for a leaf. */
function objectShape(schema: z.ZodType): Shape | undefined {
  let def = (schema as unknown as { _zod: { def: Record<string, unknown> } })._zod.def;
  for (let i = 0; i < 10; i++) {
    if (def.type === 'object') return def.shape as Shape;
    const inner = (def.innerType ?? def.out) as z.ZodType | undefined;
    if (!inner) return undefined;
    def = (inner as unknown as { _zod: { def: Record<string, unknown> } })._zod.def;
  }
  return undefined;
}

const normalizeKey = (k: string) => k.replace(/_/g, '').toLowerCase();

/**
 * Applies `SEALDROP_<SECTION>__<KEY>[__<SUBKEY>]` variables onto `raw`. Segments are matched
 * against the schema's keys case-insensitively, ignoring underscores (`PUBLIC_BASE_URL` →
 * `publicBaseUrl`). A `_FILE` suffix reads the value from that file (trailing newline removed).
 */
function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: string[]): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const segments = name.slice(ENV_PREFIX.length).split('__');
    // Without "__" only top-level keys that are not sections count (SEALDROP_DROP_FOLDERS);
    // other SEALDROP_ variables (SEALDROP_CONFIG, client settings) are not configuration keys.
    if (segments.length === 1 && !isTopLevelLeaf(segments[0] as string)) continue;
    // A key that itself ends in "File" (kekFile) wins over the "_FILE" secret-file suffix.
    let keys = resolveKeys(segments);
    let fromFile = false;
    const last = segments[segments.length - 1] ?? '';
    if (!keys && last.endsWith('_FILE')) {
      keys = resolveKeys([...segments.slice(0, -1), last.slice(0, -'_FILE'.length)]);
      fromFile = true;
    }
    if (!keys) {
      problems.push(`${name}: unknown configuration key "${segments.map((s) => s.toLowerCase()).join('.')}"`);
      continue;
    }
    let v: string = value;
    if (fromFile) {
      try {
        v = readFileSync(value, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        problems.push(`${keys.join('.')}: cannot read secret file ${value} (from ${name}): ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        continue;
      }
    }
    let target: Record<string, unknown> = raw;
    for (const key of keys.slice(0, -1)) {
      const next = target[key];
      if (next === undefined || next === null || typeof next !== 'object' || Array.isArray(next)) target[key] = {};
      target = target[key] as Record<string, unknown>;
    }
    target[keys[keys.length - 1] as string] = v;
  }
}

function isTopLevelLeaf(segment: string): boolean {
  const shape = objectShape(configSchema) as Shape;
  const key = Object.keys(shape).find((k) => normalizeKey(k) === normalizeKey(segment.replace(/_FILE$/, '')));
  return key !== undefined && objectShape(shape[key] as z.ZodType) === undefined;
}

/** Maps env segments to schema keys (case-insensitive, underscores ignored), or null if one is unknown. */
function resolveKeys(segments: string[]): string[] | null {
  let shape: Shape | undefined = objectShape(configSchema);
  const keys: string[] = [];
  for (const [i, segment] of segments.entries()) {
    const seg = normalizeKey(segment);
    const key = shape ? Object.keys(shape).find((k) => normalizeKey(k) === seg) : undefined;
    if (!key || !shape) return null;
    keys.push(key);
    if (i < segments.length - 1) {
      const child = shape[key];
      shape = child ? objectShape(child) : undefined;
    }
  }
  return keys;
}

/** Formats a zod issue as one line naming the key. */
function issueLine(issue: z.core.$ZodIssue): string {
  const key = issue.path.map(String).join('.') || '(root)';
  if (issue.code === 'unrecognized_keys') {
    const prefix = issue.path.length ? `${issue.path.join('.')}.` : '';
    return issue.keys.map((k) => `${prefix}${k}: unknown configuration key`).join('\n');
  }
  let message = issue.message;
  if (issue.code === 'invalid_type') message = `expected ${issue.expected}`;
  return `${key}: ${message}`;
}

/** Reads, merges, validates and resolves the configuration; throws ConfigError listing every problem. */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const problems: string[] = [];
  let raw: Record<string, unknown> = {};
  const file = options.file ? path.resolve(cwd, options.file) : undefined;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError([`--config: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
    }
    try {
      const parsed: unknown = parseYaml(text, { uniqueKeys: true });
      if (parsed !== null && parsed !== undefined) {
        if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError([`${file}: the top level must be a mapping`]);
        raw = parsed as Record<string, unknown>;
      }
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const where = err instanceof YAMLParseError && err.linePos ? `:${err.linePos[0].line}` : '';
      throw new ConfigError([`${file}${where}: not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
    }
  }
  applyEnv(raw, env, problems);
  const result = configSchema.safeParse(raw);
  if (!result.success) problems.push(...result.error.issues.flatMap((i) => issueLine(i).split('\n')));
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  const config = result.data;
  problems.push(...crossChecks(config));
  if (problems.length > 0) throw new ConfigError(problems);
  return { config, paths: resolvePaths(config, cwd), file };
}

function crossChecks(config: Config): string[] {
  const problems: string[] = [];
  if (config.deliveries.defaultExpiryDays > config.deliveries.maxExpiryDays) {
    problems.push('deliveries.defaultExpiryDays: must not exceed deliveries.maxExpiryDays');
  }
  const seen = new Set<string>();
  config.dropFolders.forEach((f, i) => {
    const key = f.name.toLowerCase();
    if (seen.has(key)) problems.push(`dropFolders.${i}.name: duplicate drop folder name "${f.name}"`);
    seen.add(key);
    if (f.expiresInDays !== undefined && f.expiresInDays > config.deliveries.maxExpiryDays) {
      problems.push(`dropFolders.${i}.expiresInDays: must not exceed deliveries.maxExpiryDays`);
    }
  });
  if (config.mail.retryBaseMs > config.mail.retryMaxMs) problems.push('mail.retryBaseMs: must not exceed mail.retryMaxMs');
  if (config.database.driver === 'postgresql' && !config.database.url) problems.push('database.url: required when database.driver is postgresql (postgres://user@host:port/database)');
  problems.push(...databaseTlsChecks(config.database));
  return problems;
}

/** The PostgreSQL TLS settings from `database.tls` and the URL's sslmode/sslrootcert, or why they do not fit. */
export function databaseTls(db: Config['database']): { mode: DatabaseTlsMode; caFile?: string | undefined } {
  const params = db.url ? new URL(db.url).searchParams : new URLSearchParams();
  const mode = db.tls.mode ?? (params.get('sslmode') as DatabaseTlsMode | null) ?? 'disable';
  const caFile = db.tls.caFile ?? params.get('sslrootcert') ?? undefined;
  return { mode, caFile };
}

function databaseTlsChecks(db: Config['database']): string[] {
  const problems: string[] = [];
  if (!db.url) return problems;
  const params = new URL(db.url).searchParams;
  for (const key of new Set(params.keys())) {
    if (key !== 'sslmode' && key !== 'sslrootcert') problems.push(`database.url: the parameter "${key}" is not supported (sealdrop reads sslmode and sslrootcert; see database.tls)`);
  }
  const urlMode = params.get('sslmode');
  if (urlMode !== null && !(TLS_MODES as readonly string[]).includes(urlMode)) problems.push(`database.url: sslmode "${urlMode}" is not supported; use one of ${TLS_MODES.join(', ')}`);
  if (urlMode !== null && db.tls.mode !== undefined && urlMode !== db.tls.mode) problems.push(`database.tls.mode: "${db.tls.mode}" contradicts sslmode=${urlMode} in database.url; set one of them`);
  const urlCa = params.get('sslrootcert');
  if (urlCa !== null && db.tls.caFile !== undefined && urlCa !== db.tls.caFile) problems.push('database.tls.caFile: contradicts sslrootcert in database.url; set one of them');
  if (problems.length > 0) return problems;
  const { mode, caFile } = databaseTls(db);
  if (caFile !== undefined && (mode === 'disable' || mode === 'require')) problems.push(`database.tls.caFile: only used with mode verify-ca or verify-full (the mode is ${mode})`);
  return problems;
}

function resolvePaths(config: Config, cwd: string): ResolvedPaths {
  const dataDir = path.resolve(cwd, config.storage.dataDir);
  const { caFile } = databaseTls(config.database);
  return {
    dataDir,
    blobDir: path.resolve(cwd, config.storage.blobDir ?? path.join(dataDir, 'blobs')),
    sqlitePath: path.resolve(cwd, config.database.sqlitePath ?? path.join(dataDir, 'sealdrop.db')),
    mailDir: path.resolve(cwd, config.mail.fileDir ?? path.join(dataDir, 'mail')),
    kekFile: path.resolve(cwd, config.crypto.kekFile),
    hostKeyDir: path.resolve(cwd, config.sftp.hostKeyDir ?? path.join(dataDir, 'host-keys')),
    databaseCaFile: caFile === undefined ? undefined : path.resolve(cwd, caFile),
  };
}

/** A copy of the configuration with every secret replaced by "[redacted]", for `config show` and support dumps. */
export function redactConfig(config: Config): Config {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const dotted of SECRET_KEYS) {
    const parts = dotted.split('.');
    let node: Record<string, unknown> | undefined = copy;
    for (const p of parts.slice(0, -1)) node = node?.[p] as Record<string, unknown> | undefined;
    const leaf = parts[parts.length - 1] ?? '';
    if (node && node[leaf] !== undefined) node[leaf] = '[redacted]';
  }
  const redacted = copy as unknown as Config;
  if (redacted.database.url) redacted.database.url = redactUrl(redacted.database.url);
  return redacted;
}

/** `url` with the password it may hold replaced by "[redacted]" (for logs and dumps). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password) return url;
    return `${u.protocol}//${u.username}:[redacted]@${u.host}${u.pathname}${u.search}`;
  } catch {
    return '[redacted]';
  }
}
