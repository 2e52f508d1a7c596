import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ProviderDeps } from '../src/channels/channel.js';
import { feishuWebhookModule, signFeishuWebhook } from '../src/channels/feishu-webhook.js';
import { FakeFeishu } from './fakes/feishu.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { channelPerProvider, createTemplates, hostAlert, sendAndSettle, startTestHerald, type TestHerald } from './helpers/herald.js';

const NO_DEPS = {} as ProviderDeps;
const SECRET = 'bot-secret-0123456789';
const ANN = 'ou_0a1b2c3d4e5f';
const BO = 'bo@example.com';

describe('feishu_webhook provider', () => {
  test('signs as the worked example: base64(HMAC-SHA256(key = timestamp\\nsecret, message = empty))', () => {
    assert.equal(signFeishuWebhook('1599360473', 'demo-secret'), '3/MaVZ8JLIy4TUG+7KSFJqvUkTKd+HWY8g+56DZWq8s=');
  });

  test('is a group channel for feishu_user_id and email, declaring 5 posts per 3 s per bot', async () => {
    const p = feishuWebhookModule.create('fw', { webhookUrl: 'https://open.feishu.cn/open-apis/bot/v2/hook/tok' }, NO_DEPS);
    assert.equal(p.postsToGroup, true);
    assert.deepEqual(p.recipientTypes, ['feishu_user_id', 'email']);
    assert.deepEqual(p.rateLimit, { limit: 5, intervalMs: 3_000 });
    assert.equal(p.validateTarget({ type: 'feishu_user_id', value: ANN }), undefined);
    assert.match(p.validateTarget({ type: 'feishu_user_id', value: 'ou_x"><at user_id="all' })!, /quotes/);
    assert.match(p.validateTarget({ type: 'email', value: 'bo' })!, /email/);
    await p.close();
  });

  test('refuses bad fields naming the key, never quoting the URL or secret', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'providers.fw.webhookUrl'],
      [{ webhookUrl: 'open.feishu.cn/open-apis/bot/v2/hook/tok-secret' }, 'providers.fw.webhookUrl'],
      [{ webhookUrl: 'https://open.feishu.cn/open-apis/bot/v2/hook/tok-secret', secret: 7 }, 'providers.fw.secret'],
      [{ webhookUrl: 'https://open.feishu.cn/open-apis/bot/v2/hook/tok-secret', msgType: 'image' }, 'providers.fw.msgType'],
    ];
    for (const [fields, key] of cases) {
      assert.throws(() => feishuWebhookModule.create('fw', fields, NO_DEPS), configErrorNaming(key, 'tok-secret'), JSON.stringify(fields));
    }
  });
});

for (const backend of BACKENDS) {
  describe(`feishu_webhook channel (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let fake: FakeFeishu;

    before(async () => {
      t = await createTestDb(backend);
      fake = await FakeFeishu.start();
      // The main bot's limits are raised so the tests' posts never trip them; fw-slow keeps one a second.
      const main = fake.addBot('tok-main', { secret: SECRET, perSecond: 100 });
      const providers = {
        feishu_webhook: { type: 'feishu_webhook', webhookUrl: main, secret: SECRET },
        'fw-badsign': { type: 'feishu_webhook', webhookUrl: main, secret: 'not-the-bots-secret' },
        'fw-gone': { type: 'feishu_webhook', webhookUrl: `${fake.url}/open-apis/bot/v2/hook/tok-deleted` },
        'fw-kw': { type: 'feishu_webhook', webhookUrl: fake.addBot('tok-kw', { keywords: ['[Herald]'] }) },
        'fw-slow': { type: 'feishu_webhook', webhookUrl: fake.addBot('tok-slow', { secret: SECRET, perSecond: 1 }), secret: SECRET },
      };
      h = await startTestHerald(t.db, {
        channels: channelPerProvider(providers),
        providers,
      });
      const postBody = '{"zh_cn":{"title":"Disk full","content":[[{"tag":"text","text":"on {{ .host }}"}]]}}';
      const card = (schema: string) =>
        schema === '2.0'
          ? '{"schema":"2.0","header":{"title":{"tag":"plain_text","content":"Disk full"}},"body":{"elements":[{"tag":"markdown","content":"on **{{ .host }}**"}]}}'
          : '{"config":{"wide_screen_mode":true},"header":{"title":{"tag":"plain_text","content":"Disk full"},"template":"red"},"elements":[{"tag":"div","text":{"tag":"lark_md","content":"on **{{ .host }}**"}}]}';
      await createTemplates(h, [
        ...Object.keys(providers).map((channel) => ({ name: `${channel}.alert`, channel, body: 'Disk full on {{ .host }}' })),
        { name: 'feishu_webhook.post', channel: 'feishu_webhook', msgType: 'post', body: postBody },
        { name: 'feishu_webhook.card', channel: 'feishu_webhook', msgType: 'interactive', body: card('1.0') },
        { name: 'feishu_webhook.card2', channel: 'feishu_webhook', msgType: 'interactive', body: card('2.0') },
        { name: 'feishu_webhook.broken', channel: 'feishu_webhook', msgType: 'post', body: '{"zh_cn":{"title":"{{ .host }}"' },
        { name: 'feishu_webhook.image', channel: 'feishu_webhook', msgType: 'post', body: '{"zh_cn":{"content":[[{"tag":"img","image_key":"https://img.example.com/a.png"}]]}}' },
        { name: 'feishu_webhook.big', channel: 'feishu_webhook', body: `{{ .host }}${'x'.repeat(21 * 1024)}` },
        { name: 'fw-kw.tagged', channel: 'fw-kw', body: '[Herald] Disk full on {{ .host }}' },
      ]);
    });
    after(async () => {
      await h.close();
      await fake.close();
      await t.drop();
    });

    const user = (value: string) => ({ type: 'feishu_user_id', value });
    const email = (value: string) => ({ type: 'email', value });
    const postsSince = (from: number) => fake.webhookPosts.slice(from).map((p) => p.body);
    const byText = (a: unknown, b: unknown) => JSON.stringify(a).localeCompare(JSON.stringify(b));

    test('text: one signed post per recipient, an open_id mentioned with <at>, an email named in plain text', async () => {
      const from = fake.webhookPosts.length;
      const deliveries = await sendAndSettle(h, hostAlert('feishu_webhook', [user(ANN), email(BO), { type: 'phone', value: '+8613800000000' }]));
      assert.deepEqual(deliveries.map((d) => [d.recipient.value, d.status, d.attempts]).sort(), [
        [BO, 'sent', 1],
        [ANN, 'sent', 1],
      ]);
      const posts = postsSince(from);
      // The fake verified each signature; the timestamp is decimal seconds, sent as a string.
      for (const post of posts) {
        assert.match(post.timestamp, /^\d{10}$/);
        assert.equal(post.sign, signFeishuWebhook(post.timestamp, SECRET));
      }
      assert.deepEqual(posts.map(({ timestamp: _t, sign: _s, ...rest }) => rest).sort(byText), [
        { msg_type: 'text', content: { text: `Disk full on db-1 @${BO}` } },
        { msg_type: 'text', content: { text: `Disk full on db-1 <at user_id="${ANN}"></at>` } },
      ]);
    });

    test('no recipient that maps: one post to the group, mentioning no one', async () => {
      const from = fake.webhookPosts.length;
      const [d, ...more] = await sendAndSettle(h, hostAlert('feishu_webhook', [{ type: 'phone', value: '+8613800000000' }]));
      assert.equal(more.length, 0);
      assert.deepEqual(d!.recipient, { type: 'group', value: 'feishu_webhook' });
      assert.equal(d!.status, 'sent');
      const details = d!.attemptLog[0]!.details as { status: number; body: string };
      assert.equal(details.status, 200);
      assert.equal(JSON.parse(details.body).StatusMessage, 'success');
      assert.deepEqual(postsSince(from).map((p) => p.content), [{ text: 'Disk full on db-1' }]);
    });

    test('post: the template is the locale map, sent under content.post with an at line for the recipient', async () => {
      const from = fake.webhookPosts.length;
      const [d] = await sendAndSettle(h, hostAlert('feishu_webhook', [user(ANN)], 'post'));
      assert.equal(d!.status, 'sent');
      assert.deepEqual(postsSince(from)[0]!.content, {
        post: { zh_cn: { title: 'Disk full', content: [[{ tag: 'text', text: 'on db-1' }], [{ tag: 'at', user_id: ANN }]] } },
      });
    });

    test('interactive: the card goes top-level, the mention appended as card markdown (JSON 1.0 and 2.0)', async () => {
      const from = fake.webhookPosts.length;
      const [v1] = await sendAndSettle(h, hostAlert('feishu_webhook', [user(ANN)], 'card'));
      const [v2] = await sendAndSettle(h, hostAlert('feishu_webhook', [email(BO)], 'card2'));
      assert.equal(v1!.status, 'sent');
      assert.equal(v2!.status, 'sent');
      const [card1, card2] = postsSince(from);
      assert.equal(card1!.msg_type, 'interactive');
      assert.equal(card1!.content, undefined);
      assert.equal(card1!.card.header.template, 'red');
      assert.deepEqual(card1!.card.elements, [
        { tag: 'div', text: { tag: 'lark_md', content: 'on **db-1**' } },
        { tag: 'div', text: { tag: 'lark_md', content: `<at id=${ANN}></at>` } },
      ]);
      assert.deepEqual(card2!.card.body.elements, [
        { tag: 'markdown', content: 'on **db-1**' },
        { tag: 'div', text: { tag: 'plain_text', content: `@${BO}` } },
      ]);
    });

    test('a body that is not the JSON its msgType needs, or names an image URL: failed with the reason, nothing posted', async () => {
      const from = fake.requests.webhook;
      const [broken] = await sendAndSettle(h, hostAlert('feishu_webhook', [user(ANN)], 'broken'));
      assert.equal(broken!.status, 'failed');
      assert.match(broken!.lastError!, /^template body for msgType post is not valid JSON/);
      const [image] = await sendAndSettle(h, hostAlert('feishu_webhook', [], 'image'));
      assert.equal(image!.status, 'failed');
      assert.match(image!.lastError!, /cannot upload images/);
      assert.equal(fake.requests.webhook, from);
    });

    test('Feishu error codes, answered with HTTP 200 or 400, map to outcomes', async () => {
      const [badSign, goneGroup, gonePerson, keyword, tagged, big] = await Promise.all([
        sendAndSettle(h, hostAlert('fw-badsign', [])),
        sendAndSettle(h, hostAlert('fw-gone', [])),
        sendAndSettle(h, hostAlert('fw-gone', [user(ANN)])),
        sendAndSettle(h, hostAlert('fw-kw', [])),
        sendAndSettle(h, hostAlert('fw-kw', [], 'tagged')),
        sendAndSettle(h, hostAlert('feishu_webhook', [], 'big')),
      ]);
      const summary = (d: (typeof badSign)[number]) => [d.status, d.attempts, d.lastError];
      assert.deepEqual(summary(badSign[0]!), [
        'failed',
        1,
        'code 19021: sign match fail or timestamp is not within one hour from current time (check the secret, and this server clock: Feishu allows 1 h of skew)',
      ]);
      // A deleted bot is a dead address for the group post; a person's Feishu id is not what is gone.
      assert.deepEqual(summary(goneGroup[0]!).slice(0, 2), ['dead', 1]);
      assert.match(goneGroup[0]!.lastError!, /^code 19001: .*\(bot deleted or webhookUrl wrong\)$/);
      assert.deepEqual(summary(gonePerson[0]!).slice(0, 2), ['failed', 1]);
      assert.deepEqual(summary(keyword[0]!), ['failed', 1, "code 19024: Key Words Not Found (the message contains none of the bot's keywords)"]);
      assert.equal(tagged[0]!.status, 'sent');
      assert.deepEqual(summary(big[0]!), ['failed', 1, 'code 9499: Bad Request (malformed body, wrong content shape or over 20 KB)']);
      assert.equal((big[0]!.attemptLog[0]!.details as { status: number }).status, 400);
      const recorded = JSON.stringify([badSign, goneGroup, gonePerson, keyword]);
      for (const secret of [SECRET, 'not-the-bots-secret', 'tok-main', 'tok-deleted', 'tok-kw']) assert.ok(!recorded.includes(secret), secret);
    });

    test('11232 frequency limit: retried after a second, then sent', async () => {
      // tok-slow takes one post a second: the second recipient's post is refused, then sent.
      const deliveries = await sendAndSettle(h, hostAlert('fw-slow', [user(ANN), user('ou_1b2c3d4e5f6a')]));
      assert.deepEqual(deliveries.map((d) => d.status), ['sent', 'sent']);
      const retried = deliveries.find((d) => d.attempts === 2)!;
      assert.deepEqual(retried.attemptLog.map((a) => a.outcome), ['retry', 'sent']);
      assert.match(retried.attemptLog[0]!.error!, /^code 11232: /);
      const [first, second] = retried.attemptLog as unknown as { startedAt: string }[];
      const gap = Date.parse(second!.startedAt) - Date.parse(first!.startedAt);
      assert.ok(gap >= 1_000, `retried after ${gap} ms`);
    });

    test('HTTP 429 and 5xx: retried (honouring Retry-After), then sent', async () => {
      fake.failNext('webhook', { status: 503 });
      fake.failNext('webhook', { status: 429, code: 11232, msg: 'frequency limited', headers: { 'retry-after': '1' } });
      const [d] = await sendAndSettle(h, hostAlert('feishu_webhook', []));
      assert.equal(d!.status, 'sent');
      assert.deepEqual(d!.attemptLog.map((a) => [a.outcome, a.error]), [
        ['retry', 'HTTP 503'],
        ['retry', 'HTTP 429'],
        ['sent', null],
      ]);
    });
  });
}
