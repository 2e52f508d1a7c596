import { unwatchFile, watchFile } from 'node:fs';
import { join } from 'node:path';
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
  /** Re-reads the config file now (the watcher calls this on change). */
  reload(): void;
  /** Graceful stop: no new requests or claims, in-flight sends finish and are recorded. */
  close(): Promise<void>;
}

const CONFIG_WATCH_INTERVAL_MS = 1_000;
/** How long a replaced provider stays open for sends that started before the reload. */
const PROVIDER_RETIRE_MS = 60_000;

export async function startHerald(opts: StartOptions): Promise<Herald> {
  let config = opts.config;
  const role = opts.role ?? 'all';
  const log = opts.logger ?? makeLogger(config.logging.level);
  const ownsDb = !opts.db;
  const db =
    opts.db ??
    (await openDb({ url: config.database.url, dataDir: config.database.dataDir, maxConnections: config.database.maxConnections }));
  await migrate(db);

  const metrics = new Metrics(db);
  const inbox = new InboxStore(db);
  let channels = ChannelSet.build(config.channels, config.providers, { inbox });
  const retiring = new Set<NodeJS.Timeout>();

  const reload = (): void => {
    if (!opts.configFile) return;
    try {
      const next = loadConfig({ file: opts.configFile });
      const built = ChannelSet.build(next.channels, next.providers, { inbox });
      const old = channels;
      channels = built;
      config = next;
      const timer = setTimeout(() => {
        retiring.delete(timer);
        void old.close();
      }, PROVIDER_RETIRE_MS);
      retiring.add(timer);
      log.info({ channels: built.names() }, 'configuration reloaded');
    } catch (error) {
      log.error({ err: error }, 'configuration change refused; the previous configuration stays in force');
    }
  };
  if (opts.configFile) watchFile(opts.configFile, { interval: CONFIG_WATCH_INTERVAL_MS }, reload);

  let credentials: Credentials | undefined;
  let devCredential: AppCredential | undefined;
  let credentialsFile: string | undefined;
  if (config.auth.enabled) {
    credentialsFile = config.auth.credentialsFilePath ?? join(config.database.dataDir, 'credentials.yaml');
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
    reload,
    close() {
      closing ??= (async () => {
        if (opts.configFile) unwatchFile(opts.configFile, reload);
        credentials?.close();
        await api?.close();
        await dispatcher?.stop();
        await inboxLive?.stop();
        for (const timer of retiring) clearTimeout(timer);
        await channels.close();
        if (ownsDb) await db.close();
      })();
      return closing;
    },
  };
}
