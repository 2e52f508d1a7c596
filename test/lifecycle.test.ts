import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { createTestDb, type TestDb } from './helpers/db.js';
import { callApi, startTestHerald, waitFor, type TestHerald } from './helpers/herald.js';
import { countByWebhookId, makeWebhookSecret, spawnHerald, writeWorkerConfig, type HeraldProcess } from './helpers/process.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

// Child processes cannot share an in-memory PGlite, so the worker tests need a real server.
const NEEDS_POSTGRES = process.env.DATABASE_URL ? false : 'needs PostgreSQL: set DATABASE_URL to run worker processes';

describe('worker process lifecycle (postgres)', { skip: NEEDS_POSTGRES }, () => {
  let t: TestDb;
  let api: TestHerald;
  let receiver: WebhookReceiver;
  let dir: string;
  const secret = makeWebhookSecret();
  const started: HeraldProcess[] = [];

  const worker = (provider: string, dispatcher: Record<string, unknown>): HeraldProcess => {
    const config = writeWorkerConfig(dir, { databaseUrl: t.url!, provider, secret, dispatcher });
    const p = spawnHerald(['serve', '-c', config, '--role', 'worker']);
    started.push(p);
    return p;
  };

  /** Queues one notification to `count` webhook recipients at `path`; returns its id. */
  const queue = async (path: string, count: number): Promise<string> => {
    const res = await api.call('POST', '/api/v1/notifications', {
      channels: { webhook: { template: 'ping', params: {} } },
      recipients: Array.from({ length: count }, (_, i) => ({ type: 'webhook', value: `${receiver.url}${path}?to=${i}` })),
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.notificationId as string;
  };

  const statuses = async (notificationId: string) =>
    Object.fromEntries(
      (
        await t.db.query<{ status: string; n: number }>(
          'select status, count(*)::int as n from deliveries where notification_id = $1 group by status',
          [notificationId],
        )
      ).map((r) => [r.status, r.n]),
    );

  before(async () => {
    t = await createTestDb('postgres');
    receiver = await startWebhookReceiver(secret);
    api = await startTestHerald(
      t.db,
      { channels: { webhook: { provider: 'hook' } }, providers: { hook: { type: 'webhook', secret } } },
      'api',
    );
    assert.equal((await api.call('POST', '/api/v1/templates', { name: 'ping', channel: 'webhook', body: 'ping' })).status, 201);
    dir = mkdtempSync(join(tmpdir(), 'herald-lifecycle-'));
  });
  afterEach(async () => {
    // Stopping a process that already exited only returns its exit.
    await Promise.all(started.splice(0).map((p) => p.stop()));
  });
  after(async () => {
    await api.close();
    await receiver.close();
    await t.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('SIGTERM: in-flight sends finish and are recorded, the process exits 0, the rest wait for another worker', async () => {
    const SLOW_MS = 1_000;
    const IN_FLIGHT = 5;
    const TOTAL = 15;
    receiver.reply('/slow', { delayMs: SLOW_MS });
    // concurrency 5: one claim of 5 fills the worker, which then claims nothing until a send ends.
    const first = worker('hook-first', { batchSize: IN_FLIGHT, concurrency: IN_FLIGHT, leaseTimeout: '1m', sendTimeout: '10s' });
    await first.ready;
    const id = await queue('/slow', TOTAL);
    await waitFor(() => receiver.at('/slow').length === IN_FLIGHT);
    const signalledAt = Date.now();
    first.child.kill('SIGTERM');

    assert.deepEqual(await first.exited, { code: 0, signal: null }, first.stderr());
    const stopMs = Date.now() - signalledAt;
    // It waited for the endpoint's answers (about SLOW_MS) and claimed nothing more.
    assert.ok(stopMs >= SLOW_MS * 0.8, `exited after ${stopMs} ms, before its sends were answered`);
    assert.equal(receiver.at('/slow').length, IN_FLIGHT);
    assert.deepEqual(await statuses(id), { sent: IN_FLIGHT, pending: TOTAL - IN_FLIGHT });
    const recorded = await t.db.query<{ outcome: string; provider: string }>(
      'select a.outcome, a.provider from delivery_attempts a join deliveries d on d.id = a.delivery_id where d.notification_id = $1',
      [id],
    );
    assert.deepEqual(recorded, Array.from({ length: IN_FLIGHT }, () => ({ outcome: 'sent', provider: 'hook-first' })));

    receiver.reply('/slow', {});
    const second = worker('hook-second', { batchSize: IN_FLIGHT, concurrency: IN_FLIGHT, leaseTimeout: '1m', sendTimeout: '10s' });
    await waitFor(async () => (await statuses(id)).sent === TOTAL);
    const counts = countByWebhookId(receiver.at('/slow'));
    assert.equal(counts.size, TOTAL);
    assert.ok([...counts.values()].every((n) => n === 1), 'each delivery reached the endpoint once');
    const shares = await t.db.query<{ provider: string; n: number }>(
      'select provider, count(*)::int as n from deliveries where notification_id = $1 group by provider order by provider',
      [id],
    );
    assert.deepEqual(shares, [
      { provider: 'hook-first', n: IN_FLIGHT },
      { provider: 'hook-second', n: TOTAL - IN_FLIGHT },
    ]);
    assert.deepEqual(await second.stop(), { code: 0, signal: null });
  });

  test('SIGKILL mid-send: the rows stay processing until the lease passes, then another worker sends them', async () => {
    const COUNT = 5;
    // The endpoint never answers the first worker; it is killed while waiting, well inside the
    // 1.5 s its sends may take (past that it would record them as failed and free the rows itself).
    receiver.reply('/crash', { delayMs: Infinity });
    const settings = { batchSize: COUNT, concurrency: COUNT, leaseTimeout: '2s', sendTimeout: '1500ms' };
    const doomed = worker('hook-doomed', settings);
    await doomed.ready;
    const id = await queue('/crash', COUNT);
    await waitFor(() => receiver.at('/crash').length === COUNT);
    doomed.child.kill('SIGKILL');
    assert.deepEqual(await doomed.exited, { code: null, signal: 'SIGKILL' });

    const held = await t.db.query<{ status: string; locked_until: Date }>(
      'select status, locked_until from deliveries where notification_id = $1',
      [id],
    );
    assert.deepEqual(new Set(held.map((r) => r.status)), new Set(['processing']));
    const leaseEnd = Math.max(...held.map((r) => new Date(r.locked_until).getTime()));

    receiver.reply('/crash', {});
    worker('hook-rescuer', settings);
    await waitFor(async () => (await statuses(id)).sent === COUNT);
    const rows = await t.db.query<{ attempts: number; provider: string; sent_at: Date }>(
      'select attempts, provider, sent_at from deliveries where notification_id = $1',
      [id],
    );
    for (const row of rows) {
      // The dead worker's claim counts as an attempt.
      assert.equal(row.attempts, 2);
      assert.equal(row.provider, 'hook-rescuer');
      assert.ok(new Date(row.sent_at).getTime() >= leaseEnd, 'sent again only after the lease ran out');
    }
    const recorded = await t.db.query<{ attempt: number; provider: string }>(
      `select a.attempt, a.provider from delivery_attempts a join deliveries d on d.id = a.delivery_id
       where d.notification_id = $1 and a.outcome = 'sent'`,
      [id],
    );
    assert.deepEqual(recorded, Array.from({ length: COUNT }, () => ({ attempt: 2, provider: 'hook-rescuer' })));
    // At least once: the endpoint saw each delivery twice under the same webhook-id, so it can drop the repeat.
    const counts = countByWebhookId(receiver.at('/crash'));
    assert.equal(counts.size, COUNT);
    assert.ok([...counts.values()].every((n) => n === 2));
  });
});

describe('first start with no configuration (embedded store)', () => {
  let cwd: string;
  before(() => {
    cwd = mkdtempSync(join(tmpdir(), 'herald-first-start-'));
  });
  after(() => rmSync(cwd, { recursive: true, force: true }));

  test('herald serve creates ./data, prints the URL and a development credential that works', async () => {
    const env = { SERVER_ADDRESS: '127.0.0.1:0', LOGGING_LEVEL: 'warn' };
    const apiUrl = (banner: string) => {
      const url = /API:\s+(http:\/\/127\.0\.0\.1:\d+)\/api\/v1/.exec(banner)?.[1];
      assert.ok(url, banner);
      return url;
    };
    const herald = spawnHerald(['serve'], { cwd, env });
    const banner = await herald.ready;
    const appId = /X-App-Id: (\S+)/.exec(banner)?.[1];
    const appSecret = /X-App-Secret: (\S+)/.exec(banner)?.[1];
    const file = /credential in (\S+):/.exec(banner)?.[1];
    assert.ok(appId && appSecret && file, banner);
    const app = { appId, appSecret };
    try {
      assert.ok(statSync(join(cwd, 'data')).isDirectory());
      assert.equal(file, join(cwd, 'data', 'credentials.yaml'));
      assert.equal(statSync(file).mode & 0o777, 0o600, 'only the owner may read the secret');
      assert.deepEqual(
        (parseYaml(readFileSync(file, 'utf8')) as { apps: { appId: string }[] }).apps.map((a) => a.appId),
        [appId],
      );
      const template = { name: 'hello', channel: 'inapp', body: 'Hello' };
      assert.equal((await callApi(apiUrl(banner), 'POST', '/api/v1/templates', template, app)).status, 201);
      const wrong = await callApi(apiUrl(banner), 'GET', '/api/v1/templates', undefined, { appId, appSecret: `${appSecret}x` });
      assert.equal(wrong.status, 401);
    } finally {
      assert.deepEqual(await herald.stop(), { code: 0, signal: null });
    }

    // A second start keeps the credential and the data, and prints no secret.
    const again = spawnHerald(['serve'], { cwd, env });
    const second = await again.ready;
    try {
      assert.ok(second.includes(`App credentials: ${file}`), second);
      assert.doesNotMatch(second, /X-App-Secret/);
      const templates = await callApi(apiUrl(second), 'GET', '/api/v1/templates', undefined, app);
      assert.equal(templates.status, 200);
      assert.deepEqual(templates.body.items.map((t: { name: string }) => t.name), ['hello']);
    } finally {
      assert.deepEqual(await again.stop(), { code: 0, signal: null });
    }
  });
});
