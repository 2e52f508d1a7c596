import { unwatchFile, watchFile } from 'node:fs';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApi } from './api/server.js';
import { Credentials, ensureDevCredentials, type AppCredential } from './auth/credentials.js';
import { ChannelSet } from './channels/registry.js';
import { loadConfig, type Config } from './config/load.js';
import { Dispatcher } from './dispatcher/dispatcher.js';
import { Engine } from './engine/accept.js';
import { DeliveryQueries } from './engine/deliveries.js';
import { TemplateStore } from './engine/templates.js';
import { InboxLive } from './inbox/live.js';
import { InboxStore } from './inbox/store.js';
import { makeLogger } from './log.js';
import { Metrics } from './metrics.js';
import type { Db } from './store/db.js';
import { openDb } from './store/db.js';
import { migrate } from './store/migrate.js';

export type Role = 'all' | 'api' | 'worker';

export interface StartOptions {
  config: Config;
  /** The file the config came from; watched so channel and provider changes apply live. */
  configFile?: string;
  role?: Role;
  logger?: Logger;
  /** An already open database (tests share one); otherwise opened from config.database. */
  db?: Db;
}

export interface Herald {
  readonly url?: string;
  readonly db: Db;
  readonly config: () => Config;
  readonly devCredential?: AppCredential;
  readonly credentialsFile?: string;
  readonly api?: FastifyInstance;
  readonly dispatcher?: Dispatcher;
  /**
   * Re-reads the config file and the credentials file now (their watchers do this on change).
   * Returns why an edit was refused; the configuration in force then stays as it was.
   */
  reload(): Error | undefined;
  /** Graceful stop: no new requests or claims, in-flight sends finish and are recorded. */
  close(): Promise<void>;
}

const CONFIG_WATCH_INTERVAL_MS = 1_000;
/** How long a replaced provider stays open for sends that started before the reload. */
const PROVIDER_RETIRE_MS = 60_000;
/** Sections a running process cannot change: it has bound its port and opened its store. */
const RESTART_SECTIONS = ['server', 'database', 'auth'] as const;

export async function startHerald(opts: StartOptions): Promise<Herald> {
  let config = opts.config;
  const role = opts.role ?? 'all';
  const log = opts.logger ?? makeLogger(config.logging.level);
  const ownsDb = !opts.db;
  const db =
    opts.db ??
    (await openDb({ url: config.database.url, dataDir: config.database.dataDir, maxConnections: config.database.maxConnections }));
  const inbox = new InboxStore(db);
  // Providers are checked before the schema is touched: a bad file changes nothing.
  let channels: ChannelSet;
  try {
    channels = ChannelSet.build(config.channels, config.providers, { inbox });
  } catch (error) {
    if (ownsDb) await db.close();
    throw error;
  }
  await migrate(db);

  const metrics = new Metrics(db);
  // Replaced channel sets, each closed by its timer, or at shutdown if that comes first.
  const retiring = new Map<NodeJS.Timeout, ChannelSet>();

  /** Applies channels, providers, dispatcher, defaults and logging from the file; all or nothing. */
  const reloadConfig = (): Error | undefined => {
    if (!opts.configFile) return undefined;
    let next: Config;
    let built: ChannelSet;
    try {
      next = loadConfig({ file: opts.configFile });
      built = ChannelSet.build(next.channels, next.providers, { inbox });
    } catch (error) {
      log.error({ err: error }, 'configuration change refused; the previous configuration stays in force');
      return error as Error;
    }
    const pending = RESTART_SECTIONS.filter((section) => !isDeepStrictEqual(next[section], config[section]));
    if (pending.length > 0) log.warn({ sections: pending }, 'changes to these sections apply after a restart');
    const old = channels;
    channels = built;
    config = Object.freeze({ ...next, server: config.server, database: config.database, auth: config.auth });
    log.level = config.logging.level;
    const timer = setTimeout(() => {
      retiring.delete(timer);
      void old.close();
    }, PROVIDER_RETIRE_MS);
    retiring.set(timer, old);
    log.info({ channels: built.names() }, 'configuration reloaded');
    return undefined;
  };
  const onConfigChange = (): void => void reloadConfig();
  if (opts.configFile) watchFile(opts.configFile, { interval: CONFIG_WATCH_INTERVAL_MS }, onConfigChange);

  // Only the API checks app credentials; a worker never reads (or creates) the file.
  let credentials: Credentials | undefined;
  let devCredential: AppCredential | undefined;
  let credentialsFile: string | undefined;
  if (config.auth.enabled && role !== 'worker') {
    credentialsFile = resolve(config.auth.credentialsFilePath ?? join(config.database.dataDir, 'credentials.yaml'));
    if (!config.auth.credentialsFilePath) devCredential = ensureDevCredentials(credentialsFile);
    credentials = new Credentials(credentialsFile, (err) =>
      log.error({ err }, 'credentials file change refused; the previous credentials stay in force'),
    );
    credentials.watch();
  }

  let dispatcher: Dispatcher | undefined;
  if (role !== 'api' && config.dispatcher.enabled) {
    dispatcher = new Dispatcher(db, () => channels, () => config, metrics, log);
    await dispatcher.start();
  }

  let api: FastifyInstance | undefined;
  let inboxLive: InboxLive | undefined;
  let url: string | undefined;
  if (role !== 'worker') {
    inboxLive = new InboxLive(db, inbox);
    await inboxLive.start();
    const engine = new Engine(db, () => channels, metrics);
    api = buildApi(
      config,
      { db, engine, queries: new DeliveryQueries(db), templates: new TemplateStore(db), inbox, inboxLive, metrics, credentials },
      log,
    );
    await api.listen({ host: config.server.host, port: config.server.port });
    const address = api.server.address();
    if (address && typeof address === 'object') {
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      url = `http://${host === '0.0.0.0' || host === '[::]' ? 'localhost' : host}:${address.port}`;
    }
  }

  let closing: Promise<void> | undefined;
  return {
    url,
    db,
    config: () => config,
    devCredential,
    credentialsFile,
    api,
    dispatcher,
    reload() {
      const configError = reloadConfig();
      const credentialsError = credentials?.reload();
      return configError ?? credentialsError;
    },
    close() {
      closing ??= (async () => {
        if (opts.configFile) unwatchFile(opts.configFile, onConfigChange);
        credentials?.close();
        await api?.close();
        await dispatcher?.stop();
        await inboxLive?.stop();
        for (const timer of retiring.keys()) clearTimeout(timer);
        await Promise.all([channels, ...retiring.values()].map((set) => set.close()));
        if (ownsDb) await db.close();
      })();
      return closing;
    },
  };
}
