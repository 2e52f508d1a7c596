import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { createTemplates, OTHER_APP, startTestHerald, waitFor, type TestHerald } from './helpers/herald.js';

for (const backend of BACKENDS) {
  describe(`notifications API (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    before(async () => {
      t = await createTestDb(backend);
      h = await startTestHerald(t.db);
      await createTemplates(h, [
        {
          name: 'welcome',
          channel: 'inapp',
          subject: 'Hello {{ .name }}',
          body: '{{ if .vip }}VIP {{ end }}Welcome {{ .name }}{{ range .items }} [{{ . }}]{{ end }}',
        },
      ]);
    });
    after(async () => {
      await h.close();
      await t.drop();
    });

    const count = async (table: string) =>
      (await t.db.query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]!.n;

    test('GET /health answers healthy while the database answers', async () => {
      const res = await fetch(`${h.url}/health`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: 'healthy' });
    });

    test('every /api/v1 route needs app credentials', async () => {
      const none = await fetch(`${h.url}/api/v1/templates`);
      assert.equal(none.status, 401);
      assert.equal(((await none.json()) as { error: string }).error, 'unauthorized');
      const wrong = await h.call('GET', '/api/v1/templates', undefined, { appId: 'test-app', appSecret: 'nope' });
      assert.equal(wrong.status, 401);
      const bearer = await fetch(`${h.url}/api/v1/templates`, {
        headers: { authorization: 'Bearer test-app:test-secret-0123456789' },
      });
      assert.equal(bearer.status, 200);
    });

    test('POST /api/v1/notifications delivers to the in-app inbox with the template rendered', async () => {
      const res = await h.call('POST', '/api/v1/notifications', {
        idempotencyKey: 'welcome-ann',
        channels: { inapp: { template: 'welcome', params: { name: 'Ann', vip: true, items: ['a', 'b'] } } },
        recipients: [
          { type: 'user_id', value: 'ann' },
          { type: 'email', value: 'ann@example.com' },
        ],
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.status, 'accepted');
      const id = res.body.notificationId as string;
      const notification = await waitFor(async () => {
        const r = await h.call('GET', `/api/v1/notifications/${id}`);
        return r.body.status === 'sent' ? r.body : undefined;
      });
      assert.equal(notification.senderAppId, 'test-app');
      assert.equal(notification.deliveries.length, 1, 'email has no channel here, so only inapp is planned');
      assert.equal(notification.deliveries[0].recipient.value, 'ann');
      const inbox = await h.call('GET', '/api/v1/inbox/ann/messages');
      assert.equal(inbox.body.items.length, 1);
      assert.equal(inbox.body.items[0].subject, 'Hello Ann');
      assert.equal(inbox.body.items[0].body, 'VIP Welcome Ann [a] [b]');
      const deliveries = await h.call('GET', `/api/v1/notifications/${id}/deliveries`);
      assert.equal(deliveries.body.items[0].status, 'sent');
      assert.equal(deliveries.body.items[0].attempts, 1);
      assert.equal(deliveries.body.items[0].attemptLog[0].outcome, 'sent');
    });

    test('the same idempotencyKey lands once; a different body with it is a 409', async () => {
      const body = {
        idempotencyKey: 'once',
        channels: { inapp: { template: 'welcome', params: { name: 'Bo' } } },
        recipients: [{ type: 'user_id', value: 'bo' }],
      };
      const replies = await Promise.all(Array.from({ length: 20 }, () => h.call('POST', '/api/v1/notifications', body)));
      const ids = new Set(replies.map((r) => r.body.notificationId));
      assert.equal(ids.size, 1);
      const rows = await t.db.query<{ n: number }>(
        "select count(*)::int as n from deliveries d join notifications n on n.id = d.notification_id where n.idempotency_key = 'once'",
      );
      assert.equal(rows[0]!.n, 1);
      const changed = await h.call('POST', '/api/v1/notifications', { ...body, recipients: [{ type: 'user_id', value: 'cy' }] });
      assert.equal(changed.status, 409);
      assert.equal(changed.body.field, 'idempotencyKey');
      // Another app may use the same key for its own notification.
      await h.call('POST', '/api/v1/templates', { name: 'welcome', channel: 'inapp', body: 'hi' }, OTHER_APP);
      const other = await h.call('POST', '/api/v1/notifications', body, OTHER_APP);
      assert.equal(other.status, 200);
      assert.ok(!ids.has(other.body.notificationId));
    });

    test('bad requests are refused with the field named, and write nothing', async () => {
      const before = await count('notifications');
      const cases: [unknown, number, string][] = [
        [{ channels: { nope: { template: 'welcome' } }, recipients: [{ type: 'user_id', value: 'a' }] }, 400, 'channels.nope'],
        [{ channels: { inapp: { template: 'missing' } }, recipients: [{ type: 'user_id', value: 'a' }] }, 400, 'channels.inapp.template'],
        [{ channels: { inapp: { template: 'welcome' } } }, 400, 'recipients'],
        [{ channels: { inapp: { template: 'welcome' } }, recipients: [{ type: 'user_id' }] }, 400, 'recipients[0].value'],
        [{ channels: { inapp: {} }, recipients: [] }, 400, 'channels.inapp.template'],
        [{ channels: { inapp: { template: 'welcome' } }, recipients: [{ type: 'phone', value: '+1555' }] }, 400, 'recipients'],
      ];
      for (const [body, status, field] of cases) {
        const res = await h.call('POST', '/api/v1/notifications', body);
        assert.equal(res.status, status, JSON.stringify(body));
        assert.equal(res.body.error, 'validation_failed');
        assert.equal(res.body.field, field, JSON.stringify(res.body));
        assert.match(res.body.message, new RegExp(field.replace(/[[\].]/g, '\\$&')));
      }
      const big = await h.call('POST', '/api/v1/notifications', {
        channels: { inapp: { template: 'welcome', params: { pad: 'x'.repeat(1024 * 1024) } } },
        recipients: [{ type: 'user_id', value: 'a' }],
      });
      assert.equal(big.status, 413);
      assert.equal(big.body.error, 'payload_too_large');
      const notJson = await fetch(`${h.url}/api/v1/notifications`, {
        method: 'POST',
        headers: { 'x-app-id': 'test-app', 'x-app-secret': 'test-secret-0123456789', 'content-type': 'application/json' },
        body: '{"channels":',
      });
      assert.equal(notJson.status, 400);
      assert.equal(await count('notifications'), before);
    });

    test('an app sees only its own notifications, templates and inbox', async () => {
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { inapp: { template: 'welcome', params: { name: 'Di' } } },
        recipients: [{ type: 'user_id', value: 'di' }],
      });
      const id = res.body.notificationId;
      assert.equal((await h.call('GET', `/api/v1/notifications/${id}`, undefined, OTHER_APP)).status, 404);
      assert.equal((await h.call('GET', `/api/v1/notifications/${id}/deliveries`, undefined, OTHER_APP)).status, 404);
      await waitFor(async () => (await h.call('GET', '/api/v1/inbox/di/count')).body.unseen === 1);
      assert.equal((await h.call('GET', '/api/v1/inbox/di/count', undefined, OTHER_APP)).body.unseen, 0);
      const templates = await h.call('GET', '/api/v1/templates', undefined, OTHER_APP);
      assert.deepEqual(
        templates.body.items.map((x: { name: string; body: string }) => x.body),
        ['hi'],
      );
      assert.equal((await h.call('GET', '/api/v1/notifications/not-a-uuid')).status, 404);
    });

    test('a template that fails to render fails its delivery permanently with the reason', async () => {
      await h.call('POST', '/api/v1/templates', { name: 'needs-name', channel: 'inapp', body: 'Hi {{ .name }}' });
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { inapp: { template: 'needs-name', params: {} } },
        recipients: [{ type: 'user_id', value: 'eve' }],
      });
      const d = await waitFor(async () => {
        const r = await h.call('GET', `/api/v1/notifications/${res.body.notificationId}/deliveries`);
        return r.body.items[0].status === 'failed' ? r.body.items[0] : undefined;
      });
      assert.match(d.lastError, /template failed to render/);
      assert.equal(d.attempts, 1);
      assert.equal(d.attemptLog[0].outcome, 'failed');
    });

    test('GET /metrics reports accepted notifications and delivery outcomes', async () => {
      const text = await (await fetch(`${h.url}/metrics`)).text();
      assert.match(text, /herald_notifications_accepted_total [1-9]/);
      assert.match(text, /herald_delivery_attempts_total\{channel="inapp",outcome="sent"\} [1-9]/);
      assert.match(text, /herald_queue_depth\{status="pending"\} \d+/);
      assert.match(text, /herald_delivery_latency_seconds_bucket\{le="[^"]+",channel="inapp"\}/);
    });
  });
}
