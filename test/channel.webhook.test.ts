import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { decodeWebhookSecret, signWebhook } from '../src/channels/webhook.js';
import { loadConfig } from '../src/config/load.js';
import { startHerald } from '../src/service.js';
import { configErrorNaming } from './helpers/config-error.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { createTemplates, startTestHerald, testConfig, waitFor, type TestHerald } from './helpers/herald.js';
import { startWebhookReceiver, verifyWebhook, type WebhookReceiver } from './helpers/webhook-receiver.js';

// The Standard Webhooks test vector (spec §11).
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: '1614265330',
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};
const VECTOR_NOW_MS = Number(VECTOR.timestamp) * 1000;

const SECRET = `whsec_${Buffer.from('herald-webhook-test-key-32-bytes').toString('base64')}`;
const WEBHOOK_CONFIG = {
  channels: { webhook: { enabled: true, provider: 'hooks' } },
  providers: { hooks: { type: 'webhook', secret: SECRET } },
  // A send that hangs is given up after 300 ms; the lease must outlast it.
  dispatcher: { sendTimeout: '300ms', leaseTimeout: '5s' },
};

describe('webhook signing and the test receiver', () => {
  test('the receiver verifies the spec test vector, and Herald signs it identically', () => {
    const { id, timestamp, signature, body } = VECTOR;
    assert.equal(verifyWebhook(VECTOR.secret, { id, timestamp, signature }, body, VECTOR_NOW_MS), undefined);
    assert.equal(signWebhook(decodeWebhookSecret(VECTOR.secret), id, Number(timestamp), body), signature);
  });

  test('the receiver refuses a changed body, a wrong key, a stale timestamp and missing headers', () => {
    const { id, timestamp, signature, body } = VECTOR;
    const otherKey = `whsec_${Buffer.from('another-key-of-twenty-four-b').toString('base64')}`;
    assert.match(verifyWebhook(VECTOR.secret, { id, timestamp, signature }, `${body} `, VECTOR_NOW_MS)!, /no v1 signature/);
    assert.match(verifyWebhook(otherKey, { id, timestamp, signature }, body, VECTOR_NOW_MS)!, /no v1 signature/);
    assert.match(verifyWebhook(VECTOR.secret, { id: `${id}x`, timestamp, signature }, body, VECTOR_NOW_MS)!, /no v1/);
    assert.match(verifyWebhook(VECTOR.secret, { id, timestamp, signature }, body, VECTOR_NOW_MS + 301_000)!, /tolerance/);
    assert.match(verifyWebhook(VECTOR.secret, { id, timestamp, signature }, body, VECTOR_NOW_MS - 301_000)!, /tolerance/);
    assert.equal(verifyWebhook(VECTOR.secret, { id, timestamp, signature }, body, VECTOR_NOW_MS + 299_000), undefined);
    assert.match(verifyWebhook(VECTOR.secret, { id, timestamp }, body, VECTOR_NOW_MS)!, /missing/);
    const v1a = signature.replace('v1,', 'v1a,');
    assert.match(verifyWebhook(VECTOR.secret, { id, timestamp, signature: v1a }, body, VECTOR_NOW_MS)!, /no v1/);
    // Several entries (key rotation): one match is enough.
    const rotated = `v1,${Buffer.alloc(32).toString('base64')} ${signature}`;
    assert.equal(verifyWebhook(VECTOR.secret, { id, timestamp, signature: rotated }, body, VECTOR_NOW_MS), undefined);
  });

  test('the receiver answers 401 to a badly signed request and records why', async () => {
    const receiver = await startWebhookReceiver(SECRET);
    try {
      const timestamp = String(Math.floor(Date.now() / 1000));
      const post = (signature: string) =>
        fetch(`${receiver.url}/check`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'webhook-id': 'msg_1', 'webhook-timestamp': timestamp, 'webhook-signature': signature },
          body: '{"a":1}',
        });
      const good = signWebhook(decodeWebhookSecret(SECRET), 'msg_1', Number(timestamp), '{"a":1}');
      assert.equal((await post(VECTOR.signature)).status, 401);
      assert.equal((await post(good)).status, 200);
      assert.deepEqual(
        receiver.at('/check').map((r) => r.rejected),
        ['no v1 signature matches', undefined],
      );
    } finally {
      await receiver.close();
    }
  });
});

for (const backend of BACKENDS) {
  describe(`webhook channel (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let receiver: WebhookReceiver;
    before(async () => {
      t = await createTestDb(backend);
      receiver = await startWebhookReceiver(SECRET);
      h = await startTestHerald(t.db, WEBHOOK_CONFIG);
      await createTemplates(h, [{ name: 'shipped', channel: 'webhook', subject: 'Order {{ .order }}', body: 'Order {{ .order }} has shipped' }]);
    });
    after(async () => {
      await h?.close();
      await receiver?.close();
      await t?.drop();
    });

    /** Sends one notification to the receiver at `path`; returns its id. */
    async function notify(path: string): Promise<string> {
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { webhook: { template: 'shipped', params: { order: 42 } } },
        recipients: [{ type: 'webhook', value: `${receiver.url}${path}` }],
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.notificationId;
    }

    /** The notification's one delivery, with its attempts log, once it has reached `status`. */
    function deliveryWhen(id: string, status: string, timeoutMs?: number) {
      return waitFor(async () => {
        const item = (await h.call('GET', `/api/v1/notifications/${id}/deliveries`)).body.items[0];
        return item.status === status ? item : undefined;
      }, timeoutMs);
    }

    test('2xx: the signed JSON body arrives, verifies, and the delivery is sent', async () => {
      receiver.reply('/ok', { status: 200, body: '{"received":true}' });
      const id = await notify('/ok');
      const d = await deliveryWhen(id, 'sent');
      const [req, ...more] = receiver.at('/ok');
      assert.equal(more.length, 0);
      assert.equal(req!.rejected, undefined);
      assert.equal(req!.headers['content-type'], 'application/json');
      assert.equal(req!.headers['webhook-id'], `msg_${d.id}`);
      assert.ok(Math.abs(Number(req!.headers['webhook-timestamp']) * 1000 - req!.receivedAt) < 5_000);
      assert.deepEqual(req!.body, {
        deliveryId: d.id,
        notificationId: id,
        channel: 'webhook',
        recipient: { type: 'webhook', value: `${receiver.url}/ok` },
        subject: 'Order 42',
        body: 'Order 42 has shipped',
        params: { order: 42 },
      });
      assert.equal(d.attempts, 1);
      assert.equal(d.provider, 'hooks');
      assert.deepEqual(d.attemptLog[0].details, { status: 200, body: '{"received":true}' });
    });

    test('500 then 200: sent on the second attempt under the same webhook-id, both attempts logged', async () => {
      receiver.reply('/flaky', { status: 500, body: 'upstream down' }, { status: 204 });
      const d = await deliveryWhen(await notify('/flaky'), 'sent');
      const reqs = receiver.at('/flaky');
      assert.equal(reqs.length, 2);
      assert.deepEqual(reqs.map((r) => r.rejected), [undefined, undefined]);
      assert.deepEqual(reqs.map((r) => r.headers['webhook-id']), [`msg_${d.id}`, `msg_${d.id}`]);
      assert.equal(reqs[0]!.rawBody, reqs[1]!.rawBody);
      assert.equal(d.attempts, 2);
      assert.deepEqual(
        d.attemptLog.map((a: { attempt: number; outcome: string; error: string | null }) => [a.attempt, a.outcome, a.error]),
        [
          [1, 'retry', 'HTTP 500'],
          [2, 'sent', null],
        ],
      );
      assert.deepEqual(d.attemptLog[0].details, { status: 500, body: 'upstream down' });
    });

    test('429 with Retry-After: 1 is retried no sooner than 1 s later', async () => {
      // The configured backoff is 50 ms, so only the header can explain a 1 s gap.
      receiver.reply('/throttled', { status: 429, headers: { 'retry-after': '1' } }, { status: 200 });
      const d = await deliveryWhen(await notify('/throttled'), 'sent');
      const [first, second] = receiver.at('/throttled');
      assert.ok(second!.receivedAt - first!.receivedAt >= 1_000, `retried after ${second!.receivedAt - first!.receivedAt} ms`);
      assert.deepEqual(d.attemptLog.map((a: { outcome: string }) => a.outcome), ['retry', 'sent']);
    });

    test('503 forever: dead after maxRetry retries, with the reason', async () => {
      receiver.reply('/down', { status: 503 });
      const d = await deliveryWhen(await notify('/down'), 'dead');
      // defaults.maxRetry is 2 in the test config: the first attempt and two retries.
      assert.equal(d.attempts, 3);
      assert.equal(receiver.at('/down').length, 3);
      assert.equal(new Set(receiver.at('/down').map((r) => r.headers['webhook-id'])).size, 1);
      assert.equal(d.lastError, 'gave up after 3 attempts: HTTP 503');
      assert.deepEqual(d.attemptLog.map((a: { outcome: string }) => a.outcome), ['retry', 'retry', 'retry']);
    });

    test('410 Gone: dead after one attempt', async () => {
      receiver.reply('/gone', { status: 410 });
      const d = await deliveryWhen(await notify('/gone'), 'dead');
      assert.equal(d.attempts, 1);
      assert.equal(d.lastError, 'HTTP 410: endpoint gone');
      assert.equal(d.attemptLog[0].outcome, 'dead');
      assert.equal(receiver.at('/gone').length, 1);
    });

    test('400: failed after one attempt', async () => {
      receiver.reply('/bad', { status: 400, body: '{"error":"unknown event"}' });
      const d = await deliveryWhen(await notify('/bad'), 'failed');
      assert.equal(d.attempts, 1);
      assert.equal(d.lastError, 'HTTP 400');
      assert.deepEqual(d.attemptLog[0].details, { status: 400, body: '{"error":"unknown event"}' });
      assert.equal(receiver.at('/bad').length, 1);
    });

    test('a redirect is not followed and fails the delivery', async () => {
      receiver.reply('/moved', { status: 308, headers: { location: '/elsewhere' } });
      const d = await deliveryWhen(await notify('/moved'), 'failed');
      assert.equal(d.lastError, 'HTTP 308: redirects are not followed');
      assert.equal(receiver.at('/elsewhere').length, 0);
    });

    test('an endpoint that never answers is given up on at sendTimeout and retried', async () => {
      receiver.reply('/hang', { delayMs: Infinity }, { status: 200 });
      const d = await deliveryWhen(await notify('/hang'), 'sent');
      assert.equal(receiver.at('/hang').length, 2);
      assert.equal(d.attemptLog[0].outcome, 'retry');
      assert.equal(d.attemptLog[0].error, 'send timed out');
      assert.ok(d.attemptLog[0].durationMs >= 300 && d.attemptLog[0].durationMs < 2_000, `${d.attemptLog[0].durationMs} ms`);
    });

    test('a secret that is not whsec_ base64 of 24-64 bytes stops startup, naming the key but not the value', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'herald-webhook-'));
      try {
        for (const secret of ['not-a-webhook-secret', 'whsec_c2hvcnQta2V5', 'whsec_***not*base64***', 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw']) {
          const file = join(dir, 'config.yaml');
          writeFileSync(file, stringify(testConfig(dir, { ...WEBHOOK_CONFIG, providers: { hooks: { type: 'webhook', secret } } })));
          await assert.rejects(
            startHerald({ config: loadConfig({ file, env: {} }), db: t.db }),
            configErrorNaming('providers.hooks.secret', secret.replace(/^whsec_/, '')),
          );
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
