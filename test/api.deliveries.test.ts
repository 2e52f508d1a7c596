import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { OTHER_APP, startTestHerald, waitFor, type TestHerald } from './helpers/herald.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const SECRET = `whsec_${Buffer.from('herald-deliveries-test-key-0001').toString('base64')}`;
type App = { appId: string; appSecret: string };

for (const backend of BACKENDS) {
  describe(`deliveries API (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let receiver: WebhookReceiver;
    before(async () => {
      t = await createTestDb(backend);
      receiver = await startWebhookReceiver(SECRET);
      h = await startTestHerald(t.db, {
        channels: { webhook: { enabled: true, provider: 'hooks' } },
        providers: { hooks: { type: 'webhook', secret: SECRET } },
      });
      for (const app of [undefined, OTHER_APP]) {
        const created = await h.call('POST', '/api/v1/templates', { name: 'ping', channel: 'webhook', body: 'ping' }, app);
        assert.equal(created.status, 201);
      }
    });
    after(async () => {
      await h?.close();
      await receiver?.close();
      await t?.drop();
    });

    /** Sends one webhook notification to `path` and waits until its delivery reaches `status`. */
    async function deliveryAt(path: string, status: string, app?: App) {
      const res = await h.call(
        'POST',
        '/api/v1/notifications',
        { channels: { webhook: { template: 'ping' } }, recipients: [{ type: 'webhook', value: `${receiver.url}${path}` }] },
        app,
      );
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return waitFor(async () => {
        const item = (await h.call('GET', `/api/v1/notifications/${res.body.notificationId}/deliveries`, undefined, app)).body.items[0];
        return item.status === status ? item : undefined;
      });
    }

    test('GET /api/v1/deliveries?status=dead pages through this app\'s dead deliveries only', async () => {
      receiver.reply('/gone', { status: 410 });
      const mine = [];
      for (let i = 0; i < 3; i++) mine.push((await deliveryAt('/gone', 'dead')).id as string);
      const theirs = (await deliveryAt('/gone', 'dead', OTHER_APP)).id as string;

      const first = await h.call('GET', '/api/v1/deliveries?status=dead&limit=2');
      assert.equal(first.status, 200);
      assert.equal(first.body.items.length, 2);
      assert.equal(typeof first.body.nextCursor, 'string');
      const second = await h.call('GET', `/api/v1/deliveries?status=dead&limit=2&cursor=${first.body.nextCursor}`);
      assert.equal(second.body.items.length, 1);
      assert.equal(second.body.nextCursor, null);
      const listed = [...first.body.items, ...second.body.items];
      // Newest change first: the last one to die is listed first.
      assert.deepEqual(listed.map((d: { id: string }) => d.id), [...mine].reverse());
      assert.ok(listed.every((d: { status: string; lastError: string }) => d.status === 'dead' && d.lastError === 'HTTP 410: endpoint gone'));

      const other = await h.call('GET', '/api/v1/deliveries?status=dead', undefined, OTHER_APP);
      assert.deepEqual(other.body.items.map((d: { id: string }) => d.id), [theirs]);
      assert.deepEqual((await h.call('GET', '/api/v1/deliveries?status=sent')).body.items, []);
    });

    test('a bad status or cursor is a 400 naming the field', async () => {
      for (const [query, field] of [
        ['status=lost', 'status'],
        ['', 'status'],
        ['status=dead&cursor=bm90LWEtY3Vyc29y', 'cursor'],
      ] as const) {
        const res = await h.call('GET', `/api/v1/deliveries?${query}`);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.error, 'validation_failed');
        assert.equal(res.body.field, field, JSON.stringify(res.body));
      }
    });

    test('POST /api/v1/deliveries/:id/retry re-queues a dead delivery, which is sent, keeping its earlier attempts', async () => {
      receiver.reply('/recovering', { status: 503 });
      const dead = await deliveryAt('/recovering', 'dead');
      assert.equal(dead.attempts, 3);

      receiver.reply('/recovering', { status: 200 });
      const retried = await h.call('POST', `/api/v1/deliveries/${dead.id}/retry`);
      assert.equal(retried.status, 200);
      assert.equal(retried.body.id, dead.id);
      assert.equal(retried.body.status, 'retry');
      const sent = await waitFor(async () => {
        const item = (await h.call('GET', `/api/v1/notifications/${dead.notificationId}/deliveries`)).body.items[0];
        return item.status === 'sent' ? item : undefined;
      });
      assert.equal(sent.attempts, 4);
      assert.deepEqual(
        sent.attemptLog.map((a: { attempt: number; outcome: string }) => [a.attempt, a.outcome]),
        [
          [1, 'retry'],
          [2, 'retry'],
          [3, 'retry'],
          [4, 'sent'],
        ],
      );
      const ids = receiver.at('/recovering').map((r) => r.headers['webhook-id']);
      assert.deepEqual(ids, Array(4).fill(`msg_${dead.id}`));
      const deadNow = await h.call('GET', '/api/v1/deliveries?status=dead&limit=500');
      assert.ok(!deadNow.body.items.some((d: { id: string }) => d.id === dead.id));
    });

    test('retrying a sent delivery is a 409; an unknown or another app\'s delivery is a 404', async () => {
      receiver.reply('/fine', { status: 200 });
      const sent = await deliveryAt('/fine', 'sent');
      const conflict = await h.call('POST', `/api/v1/deliveries/${sent.id}/retry`);
      assert.equal(conflict.status, 409);
      assert.equal(conflict.body.error, 'conflict');

      receiver.reply('/gone-too', { status: 410 });
      const dead = await deliveryAt('/gone-too', 'dead');
      for (const [id, app] of [
        [randomUUID(), undefined],
        ['not-a-uuid', undefined],
        [dead.id, OTHER_APP],
      ] as const) {
        const res = await h.call('POST', `/api/v1/deliveries/${id}/retry`, undefined, app);
        assert.equal(res.status, 404, id);
        assert.equal(res.body.error, 'not_found');
      }
      assert.equal((await h.call('GET', '/api/v1/deliveries?status=dead&limit=500')).body.items[0].id, dead.id);
    });
  });
}
