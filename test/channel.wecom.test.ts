import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ProviderDeps } from '../src/channels/channel.js';
import { wecomModule } from '../src/channels/wecom.js';
import { startFakeWeCom, weComAnswer, type WeComFake } from './fakes/wecom.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { channelPerProvider, createTemplates, hostAlert, sendAndSettle, startTestHerald, type TestHerald } from './helpers/herald.js';

const NO_DEPS = {} as ProviderDeps;
const KEY = '693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa';
const ANN = '13800000001';
const BO = '13800000002';

describe('wecom provider', () => {
  test('is a group channel mentioning phones, declaring 20 posts a minute per robot', async () => {
    const p = wecomModule.create('wx', { webhookUrl: `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=${KEY}` }, NO_DEPS);
    assert.equal(p.postsToGroup, true);
    assert.deepEqual(p.recipientTypes, ['phone']);
    assert.deepEqual(p.rateLimit, { limit: 20, intervalMs: 60_000 });
    await p.close();
  });

  test('refuses a webhookUrl without its key, never quoting it', () => {
    for (const webhookUrl of [undefined, 'qyapi.weixin.qq.com/x?key=k-secret', 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?k-secret']) {
      assert.throws(() => wecomModule.create('wx', { webhookUrl }, NO_DEPS), configErrorNaming('providers.wx.webhookUrl', 'k-secret'));
    }
  });
});

for (const backend of BACKENDS) {
  describe(`wecom channel (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let fake: WeComFake;

    before(async () => {
      t = await createTestDb(backend);
      fake = await startFakeWeCom([{ key: KEY }, { key: 'slow-key', perMinute: 1 }]);
      const providers = {
        wx: { type: 'wecom', webhookUrl: fake.webhookUrl(KEY) },
        'wx-gone': { type: 'wecom', webhookUrl: fake.webhookUrl('removed-key') },
        'wx-slow': { type: 'wecom', webhookUrl: fake.webhookUrl('slow-key') },
      };
      h = await startTestHerald(t.db, {
        channels: channelPerProvider(providers),
        providers,
      });
      await createTemplates(h, [
        ...Object.keys(providers).map((channel) => ({ name: `${channel}.alert`, channel, subject: 'Disk full', body: 'Disk full on {{ .host }}' })),
        { name: 'wx.markdown', channel: 'wx', msgType: 'markdown', subject: 'ignored', body: '**Disk full** on <font color="warning">{{ .host }}</font>' },
        { name: 'wx.long', channel: 'wx', body: '{{ .host }}' },
        { name: 'wx.news', channel: 'wx', msgType: 'news', body: 'Disk full' },
      ]);
    });
    after(async () => {
      await h.close();
      await fake.close();
      await t.drop();
    });

    /** A notification to `channel` with its template of that kind (templates are named `<channel>.<kind>`). */
    const phone = (value: string) => ({ type: 'phone', value });
    const postsSince = (from: number) => fake.posts.slice(from).map((p) => p.body);

    test('two phone recipients: two posts, each mentioning its person in mentioned_mobile_list', async () => {
      const from = fake.posts.length;
      const deliveries = await sendAndSettle(h, hostAlert('wx', [phone(ANN), phone(BO)]));
      assert.deepEqual(deliveries.map((d) => [d.recipient.value, d.status]).sort(), [
        [ANN, 'sent'],
        [BO, 'sent'],
      ]);
      assert.deepEqual(postsSince(from).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))), [
        { msgtype: 'text', text: { content: 'Disk full\nDisk full on db-1', mentioned_mobile_list: [ANN] } },
        { msgtype: 'text', text: { content: 'Disk full\nDisk full on db-1', mentioned_mobile_list: [BO] } },
      ]);
    });

    test('no recipient: one post to the group, mentioning no one', async () => {
      const from = fake.posts.length;
      const deliveries = await sendAndSettle(h, hostAlert('wx', []));
      assert.deepEqual(deliveries.map((d) => [d.recipient, d.status]), [[{ type: 'group', value: 'wx' }, 'sent']]);
      assert.deepEqual(postsSince(from), [{ msgtype: 'text', text: { content: 'Disk full\nDisk full on db-1' } }]);
    });

    test('markdown posts the body to the group; with a phone recipient it is failed, unposted', async () => {
      const from = fake.requests.length;
      const [group] = await sendAndSettle(h, hostAlert('wx', [], 'markdown'));
      assert.equal(group!.status, 'sent');
      assert.deepEqual(postsSince(from), [{ msgtype: 'markdown', markdown: { content: '**Disk full** on <font color="warning">db-1</font>' } }]);
      const [mention] = await sendAndSettle(h, hostAlert('wx', [phone(ANN)], 'markdown'));
      assert.equal(mention!.status, 'failed');
      assert.match(mention!.lastError!, /markdown cannot mention a phone number/);
      assert.equal(fake.requests.length, from + 1);
    });

    test('93000 invalid webhook url (key unknown): dead', async () => {
      const [d] = await sendAndSettle(h, hostAlert('wx-gone', []));
      assert.equal(d!.status, 'dead');
      assert.equal(d!.attempts, 1);
      assert.match(d!.lastError!, /^errcode 93000: invalid webhook url/);
      assert.ok(!JSON.stringify(d).includes('removed-key'));
    });

    test('40058 text over 2048 bytes, 44004 empty content, unknown msgType: failed', async () => {
      // 683 three-byte characters: 2049 bytes, though far under 2048 characters.
      const [long] = await sendAndSettle(h, hostAlert('wx', [], 'long', '警'.repeat(683)));
      assert.equal(long!.status, 'failed');
      assert.equal(long!.lastError, 'errcode 40058: text.content exceed max length 2048. invalid Request Parameter');
      const [empty] = await sendAndSettle(h, hostAlert('wx', [], 'long', ''));
      assert.equal(empty!.status, 'failed');
      assert.equal(empty!.lastError, 'errcode 44004: empty content');
      const [news] = await sendAndSettle(h, hostAlert('wx', [], 'news'));
      assert.equal(news!.status, 'failed');
      assert.match(news!.lastError!, /msgType "news"/);
    });

    test('45009 over the minute limit: retried when the minute turns', async () => {
      const deliveries = await sendAndSettle(h, hostAlert('wx-slow', [phone(ANN), phone(BO)]), (ds) =>
        ds.every((d) => d.status === 'sent' || d.status === 'retry'),
      );
      const throttled = deliveries.filter((d) => d.status === 'retry');
      assert.equal(throttled.length, 1);
      assert.equal(throttled[0]!.lastError, 'errcode 45009: api freq out of limit');
      // At most a minute away, plus the dispatcher's 10 % spread.
      const next = Date.parse(throttled[0]!.nextAttemptAt!);
      assert.ok(next - Date.now() <= 66_000, `next attempt in ${next - Date.now()} ms`);
      assert.ok(new Date(next).getUTCSeconds() < 10, `next attempt at ${throttled[0]!.nextAttemptAt}`);
    });

    test('-1 system busy and HTTP 502: retried, then sent', async () => {
      fake.failNext(weComAnswer(-1, 'system busy'), { status: 502, body: 'Bad Gateway' });
      const [d] = await sendAndSettle(h, hostAlert('wx', []));
      assert.equal(d!.status, 'sent');
      assert.deepEqual(d!.attemptLog.map((a) => a.outcome), ['retry', 'retry', 'sent']);
    });
  });
}
