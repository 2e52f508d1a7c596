import assert from 'node:assert/strict';
import { createECDH } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { ProviderDeps } from '../src/channels/channel.js';
import { parseSubscription, webpushModule } from '../src/channels/webpush.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { createTemplates, sendAndSettle, startTestHerald, type TestHerald } from './helpers/herald.js';
import { decryptAes128gcm, FakePushService, type FakeSubscription } from './fakes/webpush.js';

function vapidKeys() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { vapidPublicKey: ecdh.getPublicKey().toString('base64url'), vapidPrivateKey: ecdh.getPrivateKey().toString('base64url') };
}

const VAPID = vapidKeys();
const SUBJECT = 'mailto:ops@example.com';
// The web push provider uses no inbox.
const NO_DEPS = {} as ProviderDeps;

// RFC 8291 Appendix A (spec §7.2).
const RFC8291 = {
  uaPrivate: 'q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94',
  auth: 'BTBZMqHH6r4Tts7J_aSIgg',
  body: 'DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN',
  plaintext: 'When I grow up, I want to be a watermelon',
};

describe('web push: the fake service decoder and the provider checks', () => {
  test('the fake decrypts the RFC 8291 Appendix A message, and refuses it with another auth secret', () => {
    const ua = createECDH('prime256v1');
    ua.setPrivateKey(Buffer.from(RFC8291.uaPrivate, 'base64url'));
    const body = Buffer.from(RFC8291.body, 'base64url');
    assert.equal(decryptAes128gcm(body, ua, Buffer.from(RFC8291.auth, 'base64url')).toString(), RFC8291.plaintext);
    assert.throws(() => decryptAes128gcm(body, ua, Buffer.alloc(16)), /unable to authenticate/i);
  });

  test('a config error names the field and never quotes a key', () => {
    const other = vapidKeys();
    const cases: [Record<string, unknown>, string][] = [
      [{ ...VAPID, subject: SUBJECT, vapidPrivateKey: 'not base64!' }, 'vapidPrivateKey'],
      [{ ...VAPID, subject: SUBJECT, vapidPublicKey: other.vapidPublicKey }, 'vapidPublicKey'],
      [{ ...VAPID, subject: 'ops@example.com' }, 'subject'],
      [{ ...VAPID, subject: SUBJECT, urgency: 'urgent' }, 'urgency'],
    ];
    for (const [fields, key] of cases) {
      assert.throws(() => webpushModule.create('push', fields, NO_DEPS), configErrorNaming(`providers.push.${key}`, VAPID.vapidPrivateKey));
    }
  });

  test('parseSubscription says what is wrong with a subscription', () => {
    const ua = createECDH('prime256v1');
    const p256dh = ua.generateKeys().toString('base64url');
    const good = { endpoint: 'https://push.example.com/s/1', keys: { p256dh, auth: 'BTBZMqHH6r4Tts7J_aSIgg' } };
    assert.equal(parseSubscription(JSON.stringify(good)).endpoint, good.endpoint);
    assert.throws(() => parseSubscription('{'), /JSON/);
    assert.throws(() => parseSubscription(JSON.stringify({ ...good, endpoint: 'ftp://x' })), /endpoint/);
    assert.throws(() => parseSubscription(JSON.stringify({ ...good, keys: { ...good.keys, auth: 'AAAA' } })), /keys\.auth/);
    const offCurve = Buffer.alloc(65, 1);
    offCurve[0] = 4;
    const bad = { ...good, keys: { ...good.keys, p256dh: offCurve.toString('base64url') } };
    assert.throws(() => parseSubscription(JSON.stringify(bad)), /keys\.p256dh is not a P-256/);
  });
});

for (const backend of BACKENDS) {
  describe(`webpush channel through the API (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let push: FakePushService;

    before(async () => {
      t = await createTestDb(backend);
      push = await FakePushService.start(VAPID.vapidPublicKey);
      h = await startTestHerald(t.db, {
        channels: { webpush: { provider: 'push' }, webpush_rotated: { provider: 'push_rotated' } },
        providers: {
          push: { type: 'webpush', ...VAPID, subject: SUBJECT },
          // A key pair the subscriptions were not made with (e.g. after rotating keys by mistake).
          push_rotated: { type: 'webpush', ...vapidKeys(), subject: SUBJECT },
        },
      });
      await createTemplates(h, ['webpush', 'webpush_rotated'].map((channel) => ({
        name: `alert-${channel}`,
        channel,
        subject: 'Build {{ .build }}',
        body: '{{ .text }}',
      })));
    });
    after(async () => {
      await h.close();
      await push.close();
      await t.drop();
    });

    /** Sends one notification to `sub` and returns its delivery once it is final. */
    async function deliver(sub: FakeSubscription, params: Record<string, unknown>, channel = 'webpush') {
      const [d] = await sendAndSettle(h, {
        channels: { [channel]: { template: `alert-${channel}`, params } },
        recipients: [{ type: 'webpush', value: sub.json }],
      });
      return d!;
    }

    test('a push is encrypted for the subscription and signed for the endpoint origin', async () => {
      const sub = push.subscribe();
      const d = await deliver(sub, { build: 42, text: 'Build "42" passed ✓', url: '/builds/42' });
      assert.equal(d.status, 'sent');
      assert.equal(d.attemptLog[0].details.status, 201);
      const [got] = push.to(sub);
      assert.equal(got!.status, 201, got!.rejected);
      assert.deepEqual(got!.payload, { title: 'Build 42', body: 'Build "42" passed ✓', data: { build: 42, text: 'Build "42" passed ✓', url: '/builds/42' } });
      assert.equal(got!.headers.ttl, '86400');
      assert.equal(got!.headers.urgency, 'normal');
      assert.equal(got!.headers.topic, undefined);
      assert.equal(got!.claims!.aud, push.url);
      assert.equal(got!.claims!.sub, SUBJECT);
      const ttl = (got!.claims!.exp as number) - Math.floor(Date.now() / 1000);
      assert.ok(ttl > 11 * 3600 && ttl <= 24 * 3600, `JWT valid for ${ttl} s`);
    });

    test('params.webpush sets TTL, Urgency and Topic, and stays out of the payload', async () => {
      const sub = push.subscribe();
      const d = await deliver(sub, { build: 7, text: 'x', webpush: { ttl: 60, urgency: 'high', topic: 'build-7' } });
      assert.equal(d.status, 'sent');
      const [got] = push.to(sub);
      assert.equal(got!.headers.ttl, '60');
      assert.equal(got!.headers.urgency, 'high');
      assert.equal(got!.headers.topic, 'build-7');
      assert.deepEqual((got!.payload as { data: unknown }).data, { build: 7, text: 'x' });
    });

    test('a bad params.webpush fails without a request', async () => {
      const sub = push.subscribe();
      const d = await deliver(sub, { build: 1, text: 'x', webpush: { topic: 'not a topic!' } });
      assert.equal(d.status, 'failed');
      assert.match(d.lastError!, /params\.webpush\.topic/);
      assert.equal(push.to(sub).length, 0);
    });

    test('404 and 410 mark the subscription dead', async () => {
      const ds = await Promise.all(
        [404, 410].map((status) => {
          const sub = push.subscribe();
          push.script(sub, { status });
          return deliver(sub, { build: 1, text: 'x' });
        }),
      );
      assert.deepEqual(
        ds.map((d) => [d.status, d.attempts, d.lastError]),
        [404, 410].map((status) => ['dead', 1, `HTTP ${status}: subscription expired or unsubscribed; remove it`]),
      );
    });

    test('429 is retried no sooner than its Retry-After, and 5xx is retried', async () => {
      const throttled = push.subscribe();
      push.script(throttled, { status: 429, headers: { 'retry-after': '1' } });
      const broken = push.subscribe();
      push.script(broken, { status: 503 });
      const [a, b] = await Promise.all([deliver(throttled, { build: 1, text: 'x' }), deliver(broken, { build: 2, text: 'y' })]);
      assert.deepEqual([a.status, a.attempts, a.attemptLog[0].outcome], ['sent', 2, 'retry']);
      assert.deepEqual([b.status, b.attempts, b.attemptLog[0].outcome], ['sent', 2, 'retry']);
      const [first, second] = push.to(throttled);
      assert.ok(second!.at - first!.at >= 1000, `retried after ${second!.at - first!.at} ms`);
    });

    test('a payload over 4 096 bytes is refused with 413 and fails', async () => {
      const sub = push.subscribe();
      const d = await deliver(sub, { build: 1, text: 'x'.repeat(5000) });
      assert.equal(d.status, 'failed');
      assert.match(d.lastError!, /HTTP 413/);
      assert.equal(push.to(sub)[0]!.status, 413);
    });

    test('a VAPID key the subscription was not made with is refused (403) and fails', async () => {
      const sub = push.subscribe();
      const d = await deliver(sub, { build: 1, text: 'x' }, 'webpush_rotated');
      assert.equal(d.status, 'failed');
      assert.match(d.lastError!, /HTTP 403: VAPID rejected/);
      assert.equal(d.attempts, 1);
    });

    test('a malformed subscription is refused by the API', async () => {
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { webpush: { template: 'alert-webpush', params: { build: 1, text: 'x' } } },
        recipients: [{ type: 'webpush', value: '{"endpoint":"https://push.example.com/x"}' }],
      });
      assert.equal(res.status, 400);
      assert.match(JSON.stringify(res.body), /recipients\[0\]\.value/);
    });
  });
}
