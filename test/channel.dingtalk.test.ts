import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ProviderDeps } from '../src/channels/channel.js';
import { dingtalkModule, signDingTalk } from '../src/channels/dingtalk.js';
import { json, type FakeAnswer } from './fakes/chat-webhooks.js';
import { dingTalkAnswer, startFakeDingTalk, type DingTalkFake } from './fakes/dingtalk.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { channelPerProvider, createTemplates, hostAlert, sendAndSettle, startTestHerald, type TestHerald } from './helpers/herald.js';

const NO_DEPS = {} as ProviderDeps;
const SECRET = 'SECherald0123456789abcdefghijklmnopqrstuvwxyz';
const ANN = '13800000001';
const BO = '13800000002';

describe('dingtalk provider', () => {
  test('signs as the worked example: base64(HMAC-SHA256(secret, timestamp\\nsecret))', () => {
    assert.equal(signDingTalk('SECdemo0123456789', 1577808000000), '40cZ1HejG+xamay5uz8ijoaYnw/IOP5da0yHZUts8UU=');
  });

  test('is a group channel mentioning phones, declaring 20 posts a minute per robot', async () => {
    const p = dingtalkModule.create('ding', { webhookUrl: 'https://oapi.dingtalk.com/robot/send?access_token=t', secret: SECRET }, NO_DEPS);
    assert.equal(p.postsToGroup, true);
    assert.deepEqual(p.recipientTypes, ['phone']);
    assert.deepEqual(p.rateLimit, { limit: 20, intervalMs: 60_000 });
    assert.equal(p.validateTarget({ type: 'phone', value: '+86-13800000001' }), undefined);
    assert.match(p.validateTarget({ type: 'phone', value: 'ann' })!, /mobile number/);
    await p.close();
  });

  test('refuses bad fields naming the key, never quoting the URL or secret', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'providers.ding.webhookUrl'],
      [{ webhookUrl: 'oapi.dingtalk.com/robot/send?access_token=tok-secret' }, 'providers.ding.webhookUrl'],
      [{ webhookUrl: 'https://oapi.dingtalk.com/robot/send?tok-secret' }, 'providers.ding.webhookUrl'],
      [{ webhookUrl: 'https://oapi.dingtalk.com/robot/send?access_token=tok-secret', secret: 7 }, 'providers.ding.secret'],
      [{ webhookUrl: 'https://oapi.dingtalk.com/robot/send?access_token=tok-secret', timeoutMs: 0 }, 'providers.ding.timeoutMs'],
    ];
    for (const [fields, key] of cases) {
      assert.throws(() => dingtalkModule.create('ding', fields, NO_DEPS), configErrorNaming(key, 'tok-secret'), JSON.stringify(fields));
    }
  });
});

for (const backend of BACKENDS) {
  describe(`dingtalk channel (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let fake: DingTalkFake;

    before(async () => {
      t = await createTestDb(backend);
      fake = await startFakeDingTalk([
        { token: 'tok-main', secret: SECRET },
        { token: 'tok-kw', keywords: ['[Herald]'] },
        { token: 'tok-slow', secret: SECRET, perMinute: 1 },
      ]);
      const providers = {
        ding: { type: 'dingtalk', webhookUrl: fake.webhookUrl('tok-main'), secret: SECRET },
        'ding-badsign': { type: 'dingtalk', webhookUrl: fake.webhookUrl('tok-main'), secret: 'SECnot-the-robots-secret' },
        'ding-gone': { type: 'dingtalk', webhookUrl: fake.webhookUrl('tok-removed') },
        'ding-kw': { type: 'dingtalk', webhookUrl: fake.webhookUrl('tok-kw') },
        'ding-slow': { type: 'dingtalk', webhookUrl: fake.webhookUrl('tok-slow'), secret: SECRET },
      };
      h = await startTestHerald(t.db, {
        channels: channelPerProvider(providers),
        providers,
      });
      await createTemplates(h, [
        ...Object.keys(providers).map((channel) => ({ name: `${channel}.alert`, channel, subject: 'Disk full', body: 'Disk full on {{ .host }}' })),
        { name: 'ding.markdown', channel: 'ding', msgType: 'markdown', subject: 'Disk full', body: '#### Disk full\n> {{ .host }}' },
        { name: 'ding.card', channel: 'ding', msgType: 'actionCard', body: 'Disk full' },
        { name: 'ding-kw.tagged', channel: 'ding-kw', body: '[Herald] Disk full on {{ .host }}' },
      ]);
    });
    after(async () => {
      await h.close();
      await fake.close();
      await t.drop();
    });

    const phone = (value: string) => ({ type: 'phone', value });
    /** The posts the fake took for `token` since `from`. */
    const postsSince = (from: number, token = 'tok-main') => fake.posts.slice(from).filter((p) => p.query.get('access_token') === token);

    test('two phone recipients: two signed posts, each mentioning its person in at.atMobiles and the text', async () => {
      const from = fake.posts.length;
      const deliveries = await sendAndSettle(h, hostAlert('ding', [phone(ANN), phone(BO), { type: 'email', value: 'cy@example.com' }]));
      assert.deepEqual(deliveries.map((d) => [d.recipient.value, d.status, d.attempts]).sort(), [
        [ANN, 'sent', 1],
        [BO, 'sent', 1],
      ]);
      const posts = postsSince(from);
      assert.equal(posts.length, 2);
      for (const post of posts) {
        assert.match(post.query.get('timestamp')!, /^\d{13}$/);
        assert.ok(post.query.get('sign'));
        assert.match(String(post.headers['content-type']), /^application\/json; charset=utf-8$/);
      }
      assert.deepEqual(posts.map((p) => p.body).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))), [
        { msgtype: 'text', text: { content: `Disk full\nDisk full on db-1 @${ANN}` }, at: { atMobiles: [ANN], isAtAll: false } },
        { msgtype: 'text', text: { content: `Disk full\nDisk full on db-1 @${BO}` }, at: { atMobiles: [BO], isAtAll: false } },
      ]);
    });

    test('no recipient: one post to the group, mentioning no one', async () => {
      const from = fake.posts.length;
      const [d, ...more] = await sendAndSettle(h, hostAlert('ding', []));
      assert.equal(more.length, 0);
      assert.deepEqual(d!.recipient, { type: 'group', value: 'ding' });
      assert.equal(d!.status, 'sent');
      assert.deepEqual(d!.attemptLog[0]!.details, { status: 200, body: '{"errcode":0,"errmsg":"ok"}' });
      assert.deepEqual(
        postsSince(from).map((p) => p.body),
        [{ msgtype: 'text', text: { content: 'Disk full\nDisk full on db-1' }, at: { atMobiles: [], isAtAll: false } }],
      );
    });

    test('markdown: the subject is the title and the @number ends the text', async () => {
      const from = fake.posts.length;
      const [d] = await sendAndSettle(h, hostAlert('ding', [phone(ANN)], 'markdown'));
      assert.equal(d!.status, 'sent');
      assert.deepEqual(postsSince(from).map((p) => p.body), [
        {
          msgtype: 'markdown',
          markdown: { title: 'Disk full', text: `#### Disk full\n> db-1\n\n@${ANN}` },
          at: { atMobiles: [ANN], isAtAll: false },
        },
      ]);
    });

    test('a phone that is not a mobile number is refused at the API', async () => {
      const res = await h.call('POST', '/api/v1/notifications', hostAlert('ding', [phone('ann')]));
      assert.equal(res.status, 400);
      assert.equal(res.body.field, 'recipients[0].value');
    });

    test('a msgType DingTalk is not sent as: failed without a post', async () => {
      const from = fake.requests.length;
      const [d] = await sendAndSettle(h, hostAlert('ding', [], 'card'));
      assert.equal(d!.status, 'failed');
      assert.match(d!.lastError!, /msgType "actionCard"/);
      assert.equal(fake.requests.length, from);
    });

    test('310000 sign not match (wrong secret): failed after one attempt, secrets in no record', async () => {
      const [d] = await sendAndSettle(h, hostAlert('ding-badsign', []));
      assert.equal(d!.status, 'failed');
      assert.equal(d!.attempts, 1);
      assert.match(d!.lastError!, /^errcode 310000: sign not match/);
      const recorded = JSON.stringify(d);
      assert.ok(!recorded.includes('SECnot-the-robots-secret') && !recorded.includes('tok-main'));
    });

    test('300001 token is not exist (robot removed): dead', async () => {
      const [d] = await sendAndSettle(h, hostAlert('ding-gone', []));
      assert.equal(d!.status, 'dead');
      assert.equal(d!.lastError, 'errcode 300001: token is not exist');
    });

    test('310000 keywords not in content: failed; with the keyword it is posted', async () => {
      const [refused] = await sendAndSettle(h, hostAlert('ding-kw', []));
      assert.equal(refused!.status, 'failed');
      assert.equal(refused!.lastError, 'errcode 310000: keywords not in content');
      const [tagged] = await sendAndSettle(h, hostAlert('ding-kw', [], 'tagged'));
      assert.equal(tagged!.status, 'sent');
    });

    test('130101 send too fast: retried after the 10-minute throttle', async () => {
      // The fake robot takes one post a minute; the second recipient's post is over it.
      const deliveries = await sendAndSettle(h, hostAlert('ding-slow', [phone(ANN), phone(BO)]), (ds) =>
        ds.every((d) => d.status === 'sent' || d.status === 'retry'),
      );
      const throttled = deliveries.filter((d) => d.status === 'retry');
      assert.equal(throttled.length, 1);
      assert.equal(deliveries.filter((d) => d.status === 'sent').length, 1);
      const d = throttled[0]!;
      assert.equal(d.lastError, 'errcode 130101: send too fast, exceed 20 times per minute');
      const waitMs = Date.parse(d.nextAttemptAt!) - Date.now();
      assert.ok(waitMs > 9 * 60_000 && waitMs <= 11 * 60_000 + 1_000, `next attempt in ${waitMs} ms`);
    });

    test('310000 invalid timestamp: re-signed and retried once, then failed', async () => {
      fake.failNext(dingTalkAnswer(310000, 'invalid timestamp'));
      const [once] = await sendAndSettle(h, hostAlert('ding', []));
      assert.deepEqual(once!.attemptLog.map((a) => a.outcome), ['retry', 'sent']);
      fake.failNext(dingTalkAnswer(310000, 'invalid timestamp'), dingTalkAnswer(310000, 'invalid timestamp'));
      const [twice] = await sendAndSettle(h, hostAlert('ding', []));
      assert.equal(twice!.status, 'failed');
      assert.deepEqual(twice!.attemptLog.map((a) => a.outcome), ['retry', 'failed']);
    });

    test('-1 system busy and HTTP 503: retried, then sent', async () => {
      const from = fake.posts.length;
      fake.failNext(dingTalkAnswer(-1, '系统繁忙'), { status: 503, body: '' });
      const [d] = await sendAndSettle(h, hostAlert('ding', []));
      assert.equal(d!.status, 'sent');
      assert.deepEqual(
        d!.attemptLog.map((a) => [a.outcome, a.error]),
        [
          ['retry', 'errcode -1: 系统繁忙'],
          ['retry', 'HTTP 503'],
          ['sent', null],
        ],
      );
      assert.equal(postsSince(from).length, 1);
    });

    test('300001 param error, and a 200 without errcode: failed', async () => {
      const outcomes: [FakeAnswer, string][] = [
        [dingTalkAnswer(300001, 'param error'), 'errcode 300001: param error'],
        [json(200, { ok: true }), 'answer carries no errcode'],
      ];
      for (const [answer, error] of outcomes) {
        fake.failNext(answer);
        const [d] = await sendAndSettle(h, hostAlert('ding', []));
        assert.equal(d!.status, 'failed');
        assert.equal(d!.lastError, error);
      }
    });
  });
}
