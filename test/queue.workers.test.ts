import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestDb, type TestDb } from './helpers/db.js';
import { startTestHerald, waitFor, type TestHerald } from './helpers/herald.js';
import { countByWebhookId, makeWebhookSecret, spawnHerald, writeWorkerConfig, type HeraldProcess } from './helpers/process.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const WORKERS = 3;
const NOTIFICATIONS = 300;
const RECIPIENTS_PER_NOTIFICATION = 10;
const TOTAL = NOTIFICATIONS * RECIPIENTS_PER_NOTIFICATION;
// Requests sent to the API at once while queueing.
const API_PARALLELISM = 50;

describe(
  'delivery queue shared by worker processes (postgres)',
  { skip: process.env.DATABASE_URL ? false : 'needs PostgreSQL: set DATABASE_URL to run worker processes' },
  () => {
    let t: TestDb;
    let api: TestHerald;
    let receiver: WebhookReceiver;
    let dir: string;
    const workers: HeraldProcess[] = [];
    const secret = makeWebhookSecret();

    before(async () => {
      t = await createTestDb('postgres');
      receiver = await startWebhookReceiver(secret);
      // A few milliseconds per answer, as a real endpoint takes: no worker can finish a claim
      // before the others have claimed theirs.
      receiver.reply('/q', { delayMs: 5 });
      api = await startTestHerald(
        t.db,
        { channels: { webhook: { provider: 'hook' } }, providers: { hook: { type: 'webhook', secret } } },
        'api',
      );
      dir = mkdtempSync(join(tmpdir(), 'herald-workers-'));
    });
    after(async () => {
      await Promise.all(workers.map((w) => w.stop()));
      await api.close();
      await receiver.close();
      await t.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test(`${WORKERS} workers send ${TOTAL} webhooks exactly once between them`, async (ctx) => {
      // Each worker names its webhook provider after itself; the dispatcher writes the provider
      // that sent a delivery into deliveries.provider, so the rows say which worker did what.
      for (let i = 1; i <= WORKERS; i++) {
        const config = writeWorkerConfig(dir, {
          databaseUrl: t.url!,
          provider: `hook-w${i}`,
          secret,
          dispatcher: { batchSize: 50, concurrency: 50 },
        });
        workers.push(spawnHerald(['serve', '-c', config, '--role', 'worker']));
      }
      await Promise.all(workers.map((w) => w.ready));

      const template = await api.call('POST', '/api/v1/templates', { name: 'ping', channel: 'webhook', body: 'ping {{ .n }}' });
      assert.equal(template.status, 201);
      const started = Date.now();
      for (let first = 0; first < NOTIFICATIONS; first += API_PARALLELISM) {
        const replies = await Promise.all(
          Array.from({ length: Math.min(API_PARALLELISM, NOTIFICATIONS - first) }, (_, k) => {
            const n = first + k;
            return api.call('POST', '/api/v1/notifications', {
              channels: { webhook: { template: 'ping', params: { n } } },
              recipients: Array.from({ length: RECIPIENTS_PER_NOTIFICATION }, (_, r) => ({
                type: 'webhook',
                value: `${receiver.url}/q?to=${n}-${r}`,
              })),
            });
          }),
        );
        for (const reply of replies) assert.equal(reply.status, 200, JSON.stringify(reply.body));
      }
      const queuedMs = Date.now() - started;

      const sent = async () =>
        (await t.db.query<{ n: number }>("select count(*)::int as n from deliveries where status = 'sent'"))[0]!.n;
      await waitFor(async () => (await sent()) === TOTAL, 30_000);
      const doneMs = Date.now() - started;

      const byStatus = await t.db.query<{ status: string; n: number }>(
        'select status, count(*)::int as n from deliveries group by status',
      );
      assert.deepEqual(byStatus, [{ status: 'sent', n: TOTAL }]);

      // Exactly once at the endpoint: every delivery's webhook-id arrived one time, all verified.
      assert.equal(receiver.requests.filter((r) => r.rejected).length, 0);
      const arrivals = countByWebhookId(receiver.requests);
      assert.equal(receiver.requests.length, TOTAL);
      const ids = await t.db.query<{ id: string }>('select id from deliveries');
      assert.deepEqual(new Set(arrivals.keys()), new Set(ids.map((r) => `msg_${r.id}`)));

      // One attempt each, recorded by the worker that sent it.
      const attempts = await t.db.query<{ n: number; deliveries: number; max: number }>(
        'select count(*)::int as n, count(distinct delivery_id)::int as deliveries, max(attempt)::int as max from delivery_attempts',
      );
      assert.deepEqual(attempts[0], { n: TOTAL, deliveries: TOTAL, max: 1 });

      const shares = await t.db.query<{ provider: string; n: number }>(
        'select provider, count(*)::int as n from deliveries group by provider order by provider',
      );
      assert.deepEqual(
        shares.map((s) => s.provider),
        Array.from({ length: WORKERS }, (_, i) => `hook-w${i + 1}`),
        'every worker sent some deliveries',
      );
      for (const share of shares) assert.ok(share.n > 0);
      ctx.diagnostic(
        `queued ${TOTAL} in ${queuedMs} ms; all sent after ${doneMs} ms; shares ${shares.map((s) => `${s.provider}=${s.n}`).join(' ')}`,
      );

      // Idle workers stop cleanly.
      const exits = await Promise.all(workers.splice(0).map((w) => w.stop()));
      assert.deepEqual(exits, Array.from({ length: WORKERS }, () => ({ code: 0, signal: null })));
    });
  },
);
