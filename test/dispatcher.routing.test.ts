import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Breakers } from '../src/dispatcher/breaker.js';
import { RateLimiter, rateLimitDelayMs } from '../src/dispatcher/rate-limit.js';
import { migrate } from '../src/store/migrate.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { startTestHerald, waitFor, type TestHerald } from './helpers/herald.js';
import { startFakeSmtp, type FakeSmtp } from './helpers/smtp-server.js';
import { startFakeDingTalk, type DingTalkFake } from './fakes/dingtalk.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** A loopback port nothing listens on: connections to it are refused at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('Breakers', () => {
  test('open after five transient failures in a row, let one probe through after the cool-down', () => {
    let now = 0;
    const b = new Breakers(5, 1_000, () => now);
    for (let i = 0; i < 4; i++) b.failed('p');
    assert.equal(b.waitMs('p'), 0, 'four failures keep it closed');
    b.failed('p');
    assert.equal(b.waitMs('p'), 1_000);
    now = 1_000;
    assert.equal(b.waitMs('p'), 0, 'the probe');
    assert.ok(b.waitMs('p') > 0, 'only one probe at a time');
    b.succeeded('p');
    assert.equal(b.waitMs('p'), 0);
  });
});

test('rateLimitDelayMs spaces refused sends one refill apart', () => {
  assert.equal(rateLimitDelayMs(0, 20, 60_000), 3_000);
  assert.equal(rateLimitDelayMs(4, 20, 60_000), 15_000);
});

for (const backend of BACKENDS) {
  describe(`RateLimiter (${backend})`, () => {
    let t: TestDb;
    before(async () => {
      t = await createTestDb(backend);
      await migrate(t.db);
    });
    after(() => t.drop());

    test('grants at most the limit, across concurrent callers, then refills over the interval', async () => {
      const a = new RateLimiter(t.db);
      const b = new RateLimiter(t.db);
      const grants = await Promise.all([a.acquire('k', 15, 20, 60_000), b.acquire('k', 15, 20, 60_000)]);
      assert.equal(grants[0]! + grants[1]!, 20);
      assert.equal(await a.acquire('k', 5, 20, 60_000), 0);
      assert.equal(await a.acquire('fast', 3, 3, 200), 3);
      assert.equal(await a.acquire('fast', 3, 3, 200), 0);
      await waitFor(async () => (await a.acquire('fast', 1, 3, 200)) === 1);
    });
  });

  describe(`failover and fallback (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let smtp: FakeSmtp;
    let hooks: WebhookReceiver;
    let ding: DingTalkFake;
    before(async () => {
      t = await createTestDb(backend);
      smtp = await startFakeSmtp({ username: 'relay', password: 'relay-pass' });
      hooks = await startWebhookReceiver(SECRET);
      // The robot itself would take more: what holds the posts back is Herald's own limit.
      ding = await startFakeDingTalk([{ token: 'ops', perMinute: 1_000 }]);
      const down = await closedPort();
      const smtpFields = { type: 'smtp', host: '127.0.0.1', username: 'relay', password: 'relay-pass', from: 'herald@example.com' };
      h = await startTestHerald(t.db, {
        channels: {
          email: { provider: ['relay-down', 'relay-up'] },
          webhook: { provider: 'hooks' },
          dingtalk: { provider: 'ops-robot' },
        },
        providers: {
          'relay-down': { ...smtpFields, port: down },
          'relay-up': { ...smtpFields, port: smtp.port },
          hooks: { type: 'webhook', secret: SECRET },
          'ops-robot': { type: 'dingtalk', webhookUrl: ding.webhookUrl('ops') },
        },
      });
      for (const [name, channel] of [['mail', 'email'], ['hook', 'webhook'], ['inbox', 'inapp'], ['alert', 'dingtalk']]) {
        const res = await h.call('POST', '/api/v1/templates', { name, channel: channel!, subject: 'Build {{ .n }}', body: 'Build {{ .n }} broke' });
        assert.equal(res.status, 201);
      }
    });
    after(async () => {
      await h.close();
      await Promise.all([smtp.close(), hooks.close(), ding.close()]);
      await t.drop();
    });

    const deliveries = async (id: string) => (await h.call('GET', `/api/v1/notifications/${id}/deliveries`)).body.items;

    test('a relay that keeps failing is skipped by its breaker and the next provider sends', async () => {
      const ids: string[] = [];
      for (let n = 0; n < 6; n++) {
        const res = await h.call('POST', '/api/v1/notifications', {
          channels: { email: { template: 'mail', params: { n } } },
          recipients: [{ type: 'email', value: `dev${n}@example.com` }],
        });
        ids.push(res.body.notificationId);
      }
      await waitFor(() => smtp.received.length === 6);
      for (const id of ids) {
        const [d] = await waitFor(async () => {
          const items = await deliveries(id);
          return items[0].status === 'sent' ? items : undefined;
        });
        assert.equal(d.provider, 'relay-up');
        assert.ok(d.attemptLog.every((a: { provider: string; outcome: string }) =>
          a.provider === 'relay-up' ? a.outcome === 'sent' : a.outcome === 'retry'));
      }
      const viaDown = (await Promise.all(ids.map(deliveries))).flat()
        .flatMap((d: { attemptLog: { provider: string }[] }) => d.attemptLog).filter((a) => a.provider === 'relay-down');
      assert.ok(viaDown.length >= 5 && viaDown.length <= 6, `the breaker opened after its threshold (${viaDown.length} tries)`);
    });

    test('a fallback chain moves to the next channel only when the previous one failed for that person', async () => {
      hooks.reply('/gone', { status: 410 });
      hooks.reply('/fine', { status: 200 });
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { webhook: { template: 'hook', params: { n: 7 } }, inapp: { template: 'inbox', params: { n: 7 } } },
        fallback: ['webhook', 'inapp'],
        recipients: [
          { type: 'webhook', value: `${hooks.url}/gone`, person: 'ann' },
          { type: 'user_id', value: 'ann', person: 'ann' },
          { type: 'webhook', value: `${hooks.url}/fine`, person: 'bo' },
          { type: 'user_id', value: 'bo', person: 'bo' },
        ],
      });
      assert.equal(res.status, 200);
      const items = await waitFor(async () => {
        const r = await h.call('GET', `/api/v1/notifications/${res.body.notificationId}`);
        return r.body.status === 'partial' ? r.body.deliveries : undefined;
      });
      const state = Object.fromEntries(items.map((d: { channel: string; recipient: { value: string }; status: string }) =>
        [`${d.channel}:${d.recipient.value.replace(hooks.url, '')}`, d.status]));
      assert.deepEqual(state, { 'webhook:/gone': 'dead', 'inapp:ann': 'sent', 'webhook:/fine': 'sent', 'inapp:bo': 'skipped' });
      assert.equal((await h.call('GET', '/api/v1/inbox/ann/count')).body.unseen, 1);
      assert.equal((await h.call('GET', '/api/v1/inbox/bo/count')).body.unseen, 0);
    });

    test("a provider's rate limit holds posts back to wait their turn, without using their retries", async () => {
      // DingTalk robots take 20 posts a minute: a burst of 22 sends 20 now and the rest a refill later.
      const start = Date.now();
      const ids: string[] = [];
      for (let n = 0; n < 22; n++) {
        const res = await h.call('POST', '/api/v1/notifications', { channels: { dingtalk: { template: 'alert', params: { n } } }, recipients: [] });
        ids.push(res.body.notificationId);
      }
      await waitFor(() => ding.posts.length === 20);
      const held = await waitFor(async () => {
        const all = (await Promise.all(ids.map(deliveries))).flat();
        const waiting = all.filter((d: { status: string }) => d.status === 'pending');
        return all.filter((d: { status: string }) => d.status === 'sent').length === 20 && waiting.length === 2 ? waiting : undefined;
      });
      for (const d of held) {
        assert.equal(d.attempts, 0, 'a delivery held back by the limit has used no attempt');
        // Held back at the claim, after `start`: due one refill (3 s a token) or more later.
        assert.ok(Date.parse(d.nextAttemptAt) - start >= 2_900, 'it waits for a refill');
      }
      await waitFor(() => ding.posts.length === 21, 10_000);
      assert.ok(Date.now() - start >= 2_900);
    });

    test('a fallback naming a channel the notification does not use is refused', async () => {
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { webhook: { template: 'hook', params: { n: 1 } } },
        fallback: ['webhook', 'inapp'],
        recipients: [{ type: 'user_id', value: 'x' }],
      });
      assert.equal(res.status, 400);
      assert.equal(res.body.field, 'fallback[1]');
    });
  });
}
