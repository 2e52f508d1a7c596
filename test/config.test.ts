import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { stringify } from 'yaml';
import { ConfigError } from '../src/channels/channel.js';
import { ChannelSet } from '../src/channels/registry.js';
import { DEFAULTS, loadConfig, type Config } from '../src/config/load.js';
import { configSchema } from '../src/config/schema.js';
import { InboxStore } from '../src/inbox/store.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { APP, OTHER_APP, startTestHerald, waitFor, type TestHerald } from './helpers/herald.js';
import { makeWebhookSecret, runHerald } from './helpers/process.js';

const EXAMPLE = fileURLToPath(new URL('../../config.example.yaml', import.meta.url));

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'herald-config-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** Writes `yaml` to a new file and returns its path. */
function file(yaml: string): string {
  const path = join(dir, `config-${++files}.yaml`);
  writeFileSync(path, yaml);
  return path;
}

const load = (yaml: string, env: NodeJS.ProcessEnv = {}): Config => loadConfig({ file: file(yaml), env });

/** Runs `fn` and returns the ConfigError it throws. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail('no ConfigError thrown');
}

describe('loadConfig', () => {
  test('reads every section of the sealos layout', () => {
    const c = load(`
server:
  address: 127.0.0.1:9090
  readTimeout: 10s
  writeTimeout: 1m
  idleTimeout: 90
  bodyLimit: 2048
database:
  host: db.internal
  port: 6432
  user: her ald
  password: "p@ss/word:50%?#"
  dbname: notify
  sslMode: disable
  maxOpenConns: 10
  maxIdleConns: 5
  connMaxLifetime: 5m
  dataDir: /var/lib/herald
dispatcher:
  enabled: false
  interval: 250ms
  batchSize: 50
  leaseTimeout: 1m30s
  concurrency: 20
  sendTimeout: 10s
auth:
  enabled: true
  credentialsFilePath: /etc/herald/apps.yaml
defaults:
  maxRetry: 5
  retryBackoffSeconds: [1, 2.5, 4]
logging:
  level: debug
channels:
  email:
    enabled: true
    provider: mail
  hooks:
    provider: [hook, mail]
  paused:
    enabled: false
    provider: hook
providers:
  mail:
    type: smtp
    host: smtp.example.org
    from: noreply@example.org
  hook:
    type: webhook
    secret: ${makeWebhookSecret()}
`);
    assert.deepEqual(c.server, { host: '127.0.0.1', port: 9090, readTimeoutMs: 10_000, writeTimeoutMs: 60_000, idleTimeoutMs: 90_000, bodyLimit: 2048 });
    // What the PostgreSQL driver reads back from the URL built out of the parts.
    const client = new pg.Client({ connectionString: c.database.url });
    assert.deepEqual(
      { host: client.host, port: client.port, user: client.user, password: client.password, database: client.database },
      { host: 'db.internal', port: 6432, user: 'her ald', password: 'p@ss/word:50%?#', database: 'notify' },
    );
    assert.equal(c.database.maxConnections, 10);
    assert.equal(c.database.dataDir, '/var/lib/herald');
    assert.deepEqual(c.dispatcher, { enabled: false, intervalMs: 250, batchSize: 50, leaseTimeoutMs: 90_000, concurrency: 20, sendTimeoutMs: 10_000 });
    assert.deepEqual(c.auth, { enabled: true, credentialsFilePath: '/etc/herald/apps.yaml' });
    assert.deepEqual(c.defaults, { maxRetry: 5, retryBackoffSeconds: [1, 2.5, 4] });
    assert.equal(c.logging.level, 'debug');
    assert.deepEqual(c.channels, {
      inapp: { enabled: true, provider: 'inapp' },
      email: { enabled: true, provider: 'mail' },
      hooks: { enabled: true, provider: ['hook', 'mail'] },
      paused: { enabled: false, provider: 'hook' },
    });
    assert.deepEqual(Object.keys(c.providers), ['inapp', 'mail', 'hook']);
    assert.ok(Object.isFrozen(c.dispatcher) && Object.isFrozen(c.providers.mail), 'the result is frozen');
  });

  test('no file: every default, the embedded store and the built-in inapp channel', () => {
    const c = loadConfig({ env: {} });
    assert.deepEqual(c, {
      server: { host: '0.0.0.0', port: 8080, readTimeoutMs: 30_000, writeTimeoutMs: 30_000, idleTimeoutMs: 60_000, bodyLimit: 1024 * 1024 },
      database: { url: undefined, dataDir: DEFAULTS.dataDir, maxConnections: 25 },
      dispatcher: { enabled: true, intervalMs: 1_000, batchSize: 100, leaseTimeoutMs: 300_000, concurrency: 200, sendTimeoutMs: 30_000 },
      auth: { enabled: true, credentialsFilePath: undefined },
      defaults: { maxRetry: 3, retryBackoffSeconds: [30, 120, 300] },
      logging: { level: 'info' },
      channels: { inapp: { enabled: true, provider: 'inapp' } },
      providers: { inapp: { type: 'inapp' } },
    });
  });

  test('database: url wins over the parts; any one part selects a server with the other parts defaulted', () => {
    assert.equal(load('database:\n  url: postgres://a@b/c\n  host: ignored\n').database.url, 'postgres://a@b/c');
    assert.equal(load('database:\n  password: s3cret\n').database.url, 'postgres://postgres:s3cret@localhost:5432/herald');
    assert.equal(
      load('database:\n  host: db\n  sslMode: verify-full\n').database.url,
      'postgres://postgres@db:5432/herald?sslmode=verify-full',
    );
    assert.equal(load('database:\n  dataDir: /srv/herald\n').database.url, undefined);
  });

  test('environment variables override the file, with or without underscores inside the key', () => {
    const yaml = 'dispatcher:\n  batchSize: 10\n  interval: 5s\nserver:\n  address: ":9000"\n';
    const c = load(yaml, {
      DISPATCHER_BATCH_SIZE: '7',
      DISPATCHER_LEASE_TIMEOUT: '2m',
      SERVER_ADDRESS: '127.0.0.1:9999',
      DATABASE_URL: 'postgres://u@h:5432/db',
      AUTH_ENABLED: 'false',
      AUTH_CREDENTIALS_FILE_PATH: '/run/secrets/apps.yaml',
      LOGGING_LEVEL: 'warn',
      DEFAULTS_MAX_RETRY: '9',
      DEFAULTS_RETRY_BACKOFF_SECONDS: '1, 2,3',
      // Not Herald's: ignored.
      SERVER_SOFTWARE: 'x',
      PATH: '/bin',
    });
    assert.equal(c.dispatcher.batchSize, 7);
    assert.equal(c.dispatcher.intervalMs, 5_000, 'keys the environment does not set keep the file value');
    assert.equal(c.dispatcher.leaseTimeoutMs, 120_000);
    assert.deepEqual([c.server.host, c.server.port], ['127.0.0.1', 9999]);
    assert.equal(c.database.url, 'postgres://u@h:5432/db');
    assert.deepEqual(c.auth, { enabled: false, credentialsFilePath: '/run/secrets/apps.yaml' });
    assert.equal(c.logging.level, 'warn');
    assert.deepEqual(c.defaults, { maxRetry: 9, retryBackoffSeconds: [1, 2, 3] });
    assert.equal(load(yaml, { DISPATCHER_BATCHSIZE: '8' }).dispatcher.batchSize, 8);
    assert.equal(load(yaml, { dispatcher_batch_size: '8' }).dispatcher.batchSize, 10, 'names are upper case');
    assert.equal(
      loadConfig({ env: { DATABASE_HOST: 'db.prod', DATABASE_PASSWORD: 'secret' } }).database.url,
      'postgres://postgres:secret@db.prod:5432/herald',
    );
  });

  test('a bad environment value names the variable or the key it sets', () => {
    const cases: [NodeJS.ProcessEnv, string, RegExp][] = [
      [{ DISPATCHER_BATCH_SIZE: 'many' }, 'DISPATCHER_BATCH_SIZE', /must be a number/],
      [{ DISPATCHER_BATCH_SIZE: '0' }, 'dispatcher.batchSize', /must be >= 1/],
      [{ AUTH_ENABLED: 'yes' }, 'AUTH_ENABLED', /must be true or false/],
      [{ DEFAULTS_RETRY_BACKOFF_SECONDS: '30,,300' }, 'DEFAULTS_RETRY_BACKOFF_SECONDS', /numbers separated by commas/],
      [{ DISPATCHER_INTERVAL: 'soon' }, 'dispatcher.interval', /must be a duration/],
      [{ LOGGING_LEVEL: 'loud' }, 'logging.level', /must be one of trace, debug/],
    ];
    for (const [env, key, problem] of cases) {
      const error = configError(() => loadConfig({ env }));
      assert.equal(error.key, key, JSON.stringify(env));
      assert.match(error.message, problem);
    }
  });

  test('a bad file names the key and the problem', () => {
    const cases: [string, string, RegExp][] = [
      ['dispatcher:\n  batchsize: 10\n', 'dispatcher.batchsize', /unknown key/],
      ['queue:\n  size: 1\n', 'queue', /unknown key/],
      ['channels:\n  email:\n    provider: inapp\n    colour: red\n', 'channels.email.colour', /unknown key/],
      ['dispatcher:\n  batchSize: ten\n', 'dispatcher.batchSize', /must be integer/],
      ['dispatcher:\n  enabled: sometimes\n', 'dispatcher.enabled', /must be boolean/],
      ['dispatcher:\n  leaseTimeout: 5 minutes\n', 'dispatcher.leaseTimeout', /must be a duration such as 250ms/],
      ['server:\n  readTimeout: true\n', 'server.readTimeout', /must be a duration/],
      ['dispatcher:\n  leaseTimeout: 10s\n  sendTimeout: 30s\n', 'dispatcher.leaseTimeout', /longer than dispatcher.sendTimeout/],
      ['server:\n  address: localhost\n', 'server.address', /host:port/],
      ['database:\n  sslMode: sometimes\n', 'database.sslMode', /must be one of disable, allow/],
      ['channels:\n  email:\n    provider: mail\n', 'channels.email.provider', /no provider named "mail"/],
      ['channels:\n  email:\n    provider: [inapp, mail]\n', 'channels.email.provider', /no provider named "mail"/],
      ['channels:\n  email:\n    enabled: true\n', 'channels.email.provider', /is required/],
      ['channels:\n  email:\n    provider: 7\n', 'channels.email.provider', /must be a provider name/],
      ['providers:\n  mail:\n    host: smtp.example.org\n', 'providers.mail.type', /is required/],
    ];
    for (const [yaml, key, problem] of cases) {
      const error = configError(() => load(yaml));
      assert.equal(error.key, key, yaml);
      assert.match(error.message, problem, yaml);
      assert.ok(error.message.startsWith(`${key}: `));
    }
    const broken = file('server: [\n');
    assert.match(configError(() => loadConfig({ file: broken, env: {} })).message, /not valid YAML/);
    assert.match(configError(() => loadConfig({ file: join(dir, 'missing.yaml'), env: {} })).message, /cannot read/);
  });

  test('config.example.yaml loads and shows every key of every section', () => {
    const example = loadConfig({ file: EXAMPLE, env: {} });
    assert.deepEqual(Object.keys(example.channels).sort(), ['email', 'inapp', 'webhook']);
    const text = readFileSync(EXAMPLE, 'utf8');
    // Top-level sections and what follows each up to the next one.
    const blocks = new Map([...text.matchAll(/^(\w+):\n((?:[ #].*\n|\n)*)/gm)].map((m) => [m[1]!, m[2]!]));
    for (const [section, schema] of Object.entries(configSchema.properties)) {
      const block = blocks.get(section);
      assert.ok(block, `section ${section} is missing`);
      for (const key of Object.keys((schema as { properties?: object }).properties ?? {})) {
        assert.match(block, new RegExp(`^\\s*#?\\s*${key}:`, 'm'), `${section}.${key} is not documented`);
      }
    }
  });
});

describe('herald serve with a bad configuration', () => {
  test('exits non-zero and names the key and the problem on stderr', async () => {
    const cases: [string[], RegExp][] = [
      [['-c', file('dispatcher:\n  batchsize: 10\n')], /configuration error: dispatcher\.batchsize: unknown key/],
      [['-c', file('dispatcher:\n  batchSize: "10"\n')], /configuration error: dispatcher\.batchSize: must be integer/],
      [['-c', file('dispatcher:\n  leaseTimeout: 5 minutes\n')], /configuration error: dispatcher\.leaseTimeout: must be a duration/],
      [['-c', file('channels:\n  pager:\n    provider: nope\n')], /configuration error: channels\.pager\.provider: no provider named "nope"/],
      // Provider types are known to the channel registry, which checks them once the store is open.
      [
        ['-c', file(stringify({ database: { dataDir: join(dir, 'data') }, providers: { p: { type: 'pager' } } }))],
        /configuration error: providers\.p\.type: unknown provider type "pager"/,
      ],
      [['-c', join(dir, 'missing.yaml')], /configuration error: .*missing\.yaml: cannot read/],
      [['--role', 'boss'], /configuration error: --role: must be all, api or worker/],
    ];
    const runs = await Promise.all(cases.map(([args]) => runHerald(['serve', ...args], { cwd: dir })));
    runs.forEach((run, i) => {
      const [args, expected] = cases[i]!;
      assert.equal(run.code, 1, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, expected);
      assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace for a configuration error');
      assert.ok(!run.stdout.includes('Herald is running'));
    });
  });

  test('an unknown option exits 2 with the usage', async () => {
    const run = await runHerald(['serve', '--confg', 'x.yaml'], { cwd: dir });
    assert.equal(run.code, 2);
    assert.match(run.stderr, /Unknown option '--confg'/);
    assert.match(run.stderr, /Usage: herald <command>/);
  });
});

for (const backend of BACKENDS) {
  describe(`hot reload (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    const NEW_APP = { appId: 'new-app', appSecret: 'new-secret-0123456789' };
    const ALERTS = { channels: { alerts: { provider: 'alerts-inbox' } }, providers: { 'alerts-inbox': { type: 'inapp' } } };

    before(async () => {
      t = await createTestDb(backend);
      h = await startTestHerald(t.db);
      assert.equal((await h.call('POST', '/api/v1/templates', { name: 'alert', channel: 'alerts', body: 'Alert {{ .what }}' })).status, 201);
    });
    after(async () => {
      await h.close();
      await t.drop();
    });

    const send = (user: string) =>
      h.call('POST', '/api/v1/notifications', {
        channels: { alerts: { template: 'alert', params: { what: 'disk full' } } },
        recipients: [{ type: 'user_id', value: user }],
      });
    const writeApps = (apps: object[]) => writeFileSync(join(h.dir, 'apps.yaml'), stringify({ apps }));
    const status = async (app: { appId: string; appSecret: string }) => (await h.call('GET', '/api/v1/templates', undefined, app)).status;

    test('a channel and provider added to the file are used after a reload; a disabled one is refused', async () => {
      h.writeConfig({});
      assert.equal(h.herald.reload(), undefined);
      const refused = await send('ann');
      assert.equal(refused.status, 400);
      assert.equal(refused.body.field, 'channels.alerts');

      h.writeConfig(ALERTS);
      assert.equal(h.herald.reload(), undefined);
      const accepted = await send('ann');
      assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
      const rows = await waitFor(async () => {
        const r = await t.db.query<{ status: string; provider: string }>(
          'select status, provider from deliveries where notification_id = $1',
          [accepted.body.notificationId],
        );
        return r[0]?.status === 'sent' ? r : undefined;
      });
      assert.deepEqual(rows, [{ status: 'sent', provider: 'alerts-inbox' }]);
      assert.equal((await h.call('GET', '/api/v1/inbox/ann/messages')).body.items[0].body, 'Alert disk full');

      h.writeConfig({ ...ALERTS, channels: { alerts: { enabled: false, provider: 'alerts-inbox' } } });
      assert.equal(h.herald.reload(), undefined);
      assert.equal((await send('ann')).status, 400);
    });

    test('an edit that does not validate is refused and the configuration in force stays', async () => {
      h.writeConfig(ALERTS);
      assert.equal(h.herald.reload(), undefined);
      const cases: [Record<string, unknown>, string][] = [
        [{ ...ALERTS, channels: { alerts: { provider: 'missing' } } }, 'channels.alerts.provider'],
        [{ ...ALERTS, providers: { ...ALERTS.providers, pager: { type: 'pager' } } }, 'providers.pager.type'],
        [{ ...ALERTS, providers: { ...ALERTS.providers, hook: { type: 'webhook', secret: 'whsec_not*base64' } } }, 'providers.hook.secret'],
        [{ ...ALERTS, dispatcher: { interval: 'soon' } }, 'dispatcher.interval'],
      ];
      for (const [config, key] of cases) {
        h.writeConfig(config);
        const error = h.herald.reload();
        assert.ok(error instanceof ConfigError, `${key}: ${String(error)}`);
        assert.equal(error.key, key);
        assert.ok(!error.message.includes('not*base64'), 'the message never quotes a secret');
        assert.equal((await send('bo')).status, 200, `alerts still works after the refused edit of ${key}`);
        assert.equal(h.herald.config().dispatcher.intervalMs, 50);
      }
      writeFileSync(h.configFile, 'channels: [\n');
      assert.match(String(h.herald.reload()), /not valid YAML/);
      assert.equal((await send('bo')).status, 200);
      h.writeConfig(ALERTS);
    });

    test('the credentials file is reloaded: a new app gets in, a disabled or removed one gets 401', async () => {
      h.writeConfig({});
      assert.equal(h.herald.reload(), undefined);
      assert.equal(await status(NEW_APP), 401);
      writeApps([APP, { ...OTHER_APP, enabled: false }, NEW_APP]);
      assert.equal(h.herald.reload(), undefined);
      assert.deepEqual([await status(APP), await status(OTHER_APP), await status(NEW_APP)], [200, 401, 200]);

      writeApps([APP]);
      assert.equal(h.herald.reload(), undefined);
      assert.deepEqual([await status(APP), await status(NEW_APP)], [200, 401]);

      // A broken file is refused; the apps in force stay.
      writeFileSync(join(h.dir, 'apps.yaml'), stringify({ apps: [{ appId: 'no-secret' }] }));
      const error = h.herald.reload();
      assert.ok(error instanceof ConfigError);
      assert.match(error.key, /apps\[0\]\.appSecret$/);
      assert.equal(await status(APP), 200);
      writeApps([APP, OTHER_APP]);
      assert.equal(h.herald.reload(), undefined);
    });

    if (backend === 'pglite') {
      test('the file watchers apply edits to both files without a reload call', async () => {
        h.writeConfig({});
        writeApps([APP]);
        assert.equal(h.herald.reload(), undefined);
        assert.equal((await send('cy')).status, 400);

        h.writeConfig(ALERTS);
        writeApps([APP, NEW_APP]);
        // The watchers poll the files every second.
        await waitFor(async () => (await send('cy')).status === 200, 5_000);
        await waitFor(async () => (await status(NEW_APP)) === 200, 5_000);
      });

      test('every provider in config.example.yaml builds', async () => {
        const example = loadConfig({ file: EXAMPLE, env: {} });
        const set = ChannelSet.build(example.channels, example.providers, { inbox: new InboxStore(t.db) });
        assert.deepEqual(set.names().sort(), ['email', 'inapp', 'webhook']);
        await set.close();
      });
    }
  });
}
