import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../channels/channel.js';
import { PROVIDER_TYPES, type ChannelConfig, type ProviderConfig } from '../channels/registry.js';
import { parseDuration } from './duration.js';
import { configSchema, DURATION_HINT, ENV_SECTIONS } from './schema.js';

export interface Config {
  server: {
    host: string;
    port: number;
    readTimeoutMs: number;
    writeTimeoutMs: number;
    idleTimeoutMs: number;
    /** Largest accepted request body, in bytes. */
    bodyLimit: number;
  };
  database: {
    /** A real server; absent means the embedded store in `dataDir`. */
    url?: string;
    dataDir: string;
    maxConnections: number;
  };
  dispatcher: {
    enabled: boolean;
    intervalMs: number;
    batchSize: number;
    leaseTimeoutMs: number;
    concurrency: number;
    sendTimeoutMs: number;
  };
  auth: { enabled: boolean; credentialsFilePath?: string };
  defaults: { maxRetry: number; retryBackoffSeconds: readonly number[] };
  logging: { level: string };
  channels: Readonly<Record<string, ChannelConfig>>;
  providers: Readonly<Record<string, ProviderConfig>>;
}

/** Defaults, with units in their names. */
export const DEFAULTS = {
  address: ':8080',
  readTimeout: '30s',
  writeTimeout: '30s',
  idleTimeout: '60s',
  bodyLimitBytes: 1024 * 1024,
  dataDir: './data',
  dbHost: 'localhost',
  dbPort: 5432,
  dbUser: 'postgres',
  dbName: 'herald',
  maxOpenConns: 25,
  dispatcherInterval: '1s',
  batchSize: 100,
  leaseTimeout: '5m',
  concurrency: 200,
  sendTimeout: '30s',
  maxRetry: 3,
  retryBackoffSeconds: [30, 120, 300],
  logLevel: 'info',
} as const;

/** The built-in in-app channel is always there unless the file configures `inapp` itself. */
const BUILTIN_CHANNELS: Record<string, ChannelConfig> = { inapp: { enabled: true, provider: 'inapp' } };
const BUILTIN_PROVIDERS: Record<string, ProviderConfig> = { inapp: { type: 'inapp' } };

// verbose: errors carry their schema, whose description explains a failed anyOf.
const ajv = new Ajv({ allErrors: false, strict: false, verbose: true });
const validate = ajv.compile(configSchema);

type Raw = Record<string, Record<string, unknown> | undefined>;

const DURATION_PROBLEM = `must be ${DURATION_HINT}`;

function describe(errors: ErrorObject[]): ConfigError {
  // A failed anyOf reports each branch's complaint first, then itself; its description says it best.
  const error = errors.find((e) => e.keyword === 'anyOf') ?? errors[0]!;
  const path = error.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const expected = (error.parentSchema as { description?: string } | undefined)?.description;
  if (error.keyword === 'anyOf' && expected) return new ConfigError(path, `must be ${expected}`);
  if (error.keyword === 'additionalProperties') {
    const extra = (error.params as { additionalProperty: string }).additionalProperty;
    return new ConfigError(path ? `${path}.${extra}` : extra, 'unknown key');
  }
  if (error.keyword === 'required') {
    const missing = (error.params as { missingProperty: string }).missingProperty;
    return new ConfigError(path ? `${path}.${missing}` : missing, 'is required');
  }
  const allowed = (error.params as { allowedValues?: unknown[] }).allowedValues;
  return new ConfigError(path || '(root)', allowed ? `must be one of ${allowed.join(', ')}` : (error.message ?? 'is invalid'));
}

/** Applies SECTION_KEY variables; the key matches case-insensitively with underscores ignored. */
function applyEnv(raw: Raw, env: NodeJS.ProcessEnv): void {
  const props = configSchema.properties;
  for (const section of ENV_SECTIONS) {
    const prefix = `${section.toUpperCase()}_`;
    const keys = Object.keys(props[section].properties);
    for (const [name, value] of Object.entries(env)) {
      if (!name.startsWith(prefix) || value === undefined) continue;
      const wanted = name.slice(prefix.length).replaceAll('_', '').toLowerCase();
      const key = keys.find((k) => k.toLowerCase() === wanted);
      if (!key) continue;
      const schema = (props[section].properties as Record<string, { type?: string }>)[key]!;
      const target = (raw[section] ??= {});
      target[key] = coerce(value, schema.type, name);
    }
  }
}

function coerce(value: string, type: string | undefined, name: string): unknown {
  switch (type) {
    case 'integer':
    case 'number': {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) throw new ConfigError(name, 'must be a number');
      return n;
    }
    case 'boolean':
      if (value !== 'true' && value !== 'false') throw new ConfigError(name, 'must be true or false');
      return value === 'true';
    case 'array': {
      // The schema accepts NaN as a number, so a bad item must be caught here.
      const items = value.split(',').map((v) => (v.trim() === '' ? Number.NaN : Number(v)));
      if (!items.every(Number.isFinite)) throw new ConfigError(name, 'must be numbers separated by commas');
      return items;
    }
    default:
      return value;
  }
}

function duration(value: unknown, fallback: string, key: string): number {
  const ms = parseDuration((value as string | number | undefined) ?? fallback);
  if (ms === undefined) throw new ConfigError(key, DURATION_PROBLEM);
  return ms;
}

function parseAddress(address: string): { host: string; port: number } {
  const match = /^(.*):(\d+)$/.exec(address);
  if (!match) throw new ConfigError('server.address', 'must be host:port or :port');
  const host = match[1] === '' ? '0.0.0.0' : match[1]!.replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(match[2]) };
}

const SERVER_KEYS = ['host', 'port', 'user', 'password', 'dbname', 'sslMode'] as const;

/**
 * `url` when given, else a URL built from host, port, user, password, dbname and sslMode (any one
 * of them means a server is wanted). None of them set means the embedded store.
 */
function databaseUrl(db: Record<string, unknown>): string | undefined {
  if (typeof db.url === 'string' && db.url !== '') return db.url;
  if (!SERVER_KEYS.some((key) => db[key] !== undefined && db[key] !== '')) return undefined;
  const url = new URL('postgres://localhost');
  url.hostname = String(db.host || DEFAULTS.dbHost);
  url.port = String(db.port ?? DEFAULTS.dbPort);
  // The URL setters leave '%' as it is, so a password such as "50%off" would be read back wrong.
  url.username = encodeURIComponent(String(db.user || DEFAULTS.dbUser));
  if (db.password) url.password = encodeURIComponent(String(db.password));
  url.pathname = `/${encodeURIComponent(String(db.dbname || DEFAULTS.dbName))}`;
  if (db.sslMode && db.sslMode !== 'disable') url.searchParams.set('sslmode', String(db.sslMode));
  return url.toString();
}

/** Reads, overrides from the environment, validates and freezes the configuration. */
export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv } = {}): Config {
  let raw: Raw = {};
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (error) {
      throw new ConfigError(opts.file, `cannot read: ${(error as Error).message}`);
    }
    try {
      raw = (parseYaml(text) as Raw | null) ?? {};
    } catch (error) {
      throw new ConfigError(opts.file, `not valid YAML: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  applyEnv(raw, opts.env ?? process.env);
  if (!validate(raw)) throw describe(validate.errors!);

  const server = raw.server ?? {};
  const database = raw.database ?? {};
  const dispatcher = raw.dispatcher ?? {};
  const auth = raw.auth ?? {};
  const defaults = raw.defaults ?? {};
  const config: Config = {
    server: {
      ...parseAddress((server.address as string | undefined) ?? DEFAULTS.address),
      readTimeoutMs: duration(server.readTimeout, DEFAULTS.readTimeout, 'server.readTimeout'),
      writeTimeoutMs: duration(server.writeTimeout, DEFAULTS.writeTimeout, 'server.writeTimeout'),
      idleTimeoutMs: duration(server.idleTimeout, DEFAULTS.idleTimeout, 'server.idleTimeout'),
      bodyLimit: (server.bodyLimit as number | undefined) ?? DEFAULTS.bodyLimitBytes,
    },
    database: {
      url: databaseUrl(database),
      dataDir: (database.dataDir as string | undefined) ?? DEFAULTS.dataDir,
      maxConnections: (database.maxOpenConns as number | undefined) ?? DEFAULTS.maxOpenConns,
    },
    dispatcher: {
      enabled: (dispatcher.enabled as boolean | undefined) ?? true,
      intervalMs: duration(dispatcher.interval, DEFAULTS.dispatcherInterval, 'dispatcher.interval'),
      batchSize: (dispatcher.batchSize as number | undefined) ?? DEFAULTS.batchSize,
      leaseTimeoutMs: duration(dispatcher.leaseTimeout, DEFAULTS.leaseTimeout, 'dispatcher.leaseTimeout'),
      concurrency: (dispatcher.concurrency as number | undefined) ?? DEFAULTS.concurrency,
      sendTimeoutMs: duration(dispatcher.sendTimeout, DEFAULTS.sendTimeout, 'dispatcher.sendTimeout'),
    },
    auth: {
      enabled: (auth.enabled as boolean | undefined) ?? true,
      credentialsFilePath: auth.credentialsFilePath as string | undefined,
    },
    defaults: {
      maxRetry: (defaults.maxRetry as number | undefined) ?? DEFAULTS.maxRetry,
      retryBackoffSeconds: (defaults.retryBackoffSeconds as number[] | undefined) ?? DEFAULTS.retryBackoffSeconds,
    },
    logging: { level: (raw.logging?.level as string | undefined) ?? DEFAULTS.logLevel },
    channels: { ...BUILTIN_CHANNELS, ...(raw.channels as Record<string, ChannelConfig> | undefined) },
    providers: { ...BUILTIN_PROVIDERS, ...(raw.providers as Record<string, ProviderConfig> | undefined) },
  };
  for (const [name, channel] of Object.entries(config.channels)) {
    for (const provider of typeof channel.provider === 'string' ? [channel.provider] : channel.provider) {
      if (!(provider in config.providers)) {
        throw new ConfigError(`channels.${name}.provider`, `no provider named "${provider}" under providers`);
      }
    }
    (config.channels as Record<string, ChannelConfig>)[name] = { enabled: channel.enabled ?? true, provider: channel.provider };
  }
  for (const [name, provider] of Object.entries(config.providers)) {
    if (!PROVIDER_TYPES.includes(provider.type)) {
      throw new ConfigError(`providers.${name}.type`, `unknown provider type "${provider.type}" (known: ${PROVIDER_TYPES.join(', ')})`);
    }
  }
  if (config.dispatcher.leaseTimeoutMs <= config.dispatcher.sendTimeoutMs) {
    throw new ConfigError('dispatcher.leaseTimeout', 'must be longer than dispatcher.sendTimeout');
  }
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
