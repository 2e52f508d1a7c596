import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import type { ProviderDeps } from '../src/channels/channel.js';
import { feishuAppModule } from '../src/channels/feishu-app.js';
import { FakeFeishu } from './fakes/feishu.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { APP, createTemplates, OTHER_APP, sendAndSettle, startTestHerald, waitFor, type DeliveryItem, type TestHerald } from './helpers/herald.js';

const NO_DEPS = {} as ProviderDeps;
const APP_ID = 'cli_a1b2c3d4e5f60001';
const APP_SECRET = 'feishu-app-secret-0123456789';
const ANN = 'ou_0a1b2c3d4e5f';
const BO = 'ou_1b2c3d4e5f6a';
// A 1×1 PNG: Feishu recognises uploads by their bytes.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('feishu_app provider', () => {
  const base = { appId: APP_ID, appSecret: APP_SECRET };

  test('serves feishu_user_id, or email when receiveIdType is email, checking the id kind', async () => {
    const byOpenId = feishuAppModule.create('fa', base, NO_DEPS);
    assert.deepEqual(byOpenId.recipientTypes, ['feishu_user_id']);
    assert.equal(byOpenId.postsToGroup, undefined);
    assert.equal(byOpenId.validateTarget({ type: 'feishu_user_id', value: ANN }), undefined);
    assert.match(byOpenId.validateTarget({ type: 'feishu_user_id', value: 'on_0a1b2c' })!, /starting with ou_/);
    const byEmail = feishuAppModule.create('fa', { ...base, receiveIdType: 'email' }, NO_DEPS);
    assert.deepEqual(byEmail.recipientTypes, ['email']);
    assert.match(byEmail.validateTarget({ type: 'email', value: 'ann' })!, /email/);
    await Promise.all([byOpenId.close(), byEmail.close()]);
  });

  test('refuses bad fields naming the key, never quoting the secret', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ appId: APP_ID }, 'providers.fa.appSecret'],
      [{ appSecret: APP_SECRET }, 'providers.fa.appId'],
      [{ ...base, receiveIdType: 'chat' }, 'providers.fa.receiveIdType'],
      [{ ...base, urgentType: 'loud' }, 'providers.fa.urgentType'],
      [{ ...base, receiveIdType: 'email', urgentType: 'app' }, 'providers.fa.urgentType'],
      [{ ...base, urgentType: 'app', urgentUserIdType: 'union_id' }, 'providers.fa.urgentUserIdType'],
      [{ ...base, msgType: 'image' }, 'providers.fa.msgType'],
      [{ ...base, baseUrl: 'open.feishu.cn' }, 'providers.fa.baseUrl'],
    ];
    for (const [fields, key] of cases) {
      assert.throws(() => feishuAppModule.create('fa', fields, NO_DEPS), configErrorNaming(key, APP_SECRET), JSON.stringify(fields));
    }
  });
});

for (const backend of BACKENDS) {
  describe(`feishu_app channel (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let fake: FakeFeishu;
    let chart: string;

    before(async () => {
      t = await createTestDb(backend);
      fake = await FakeFeishu.start();
      fake.addApp(APP_ID, APP_SECRET);
      chart = fake.hostImage('chart.png', PNG);
      fake.hostImage('notes.txt', Buffer.from('not an image'), 'text/plain');
      fake.outOfRange.add('ou_outside');
      fake.notInChat.add('ou_left');
      const app = { type: 'feishu_app', appId: APP_ID, appSecret: APP_SECRET, baseUrl: fake.url };
      h = await startTestHerald(t.db, {
        channels: {
          feishu_app: { enabled: true, provider: 'feishu-app-urgent' },
          'fa-email': { provider: 'fa-email' },
          'fa-badsecret': { provider: 'fa-badsecret' },
        },
        providers: {
          // The provider block of the README, pointed at the fake.
          'feishu-app-urgent': {
            ...app,
            receiveIdType: 'open_id',
            urgentUserIdType: 'open_id',
            msgType: 'text',
            urgentType: 'app',
          },
          'fa-email': { ...app, receiveIdType: 'email', urgentType: '' },
          'fa-badsecret': { ...app, appSecret: 'not-the-app-secret' },
        },
      });
      // The README's curl examples authenticate as notify-console; the watcher picks this up within a second.
      writeFileSync(join(h.dir, 'apps.yaml'), stringify({ apps: [APP, OTHER_APP, { appId: 'notify-console', appSecret: 'dev-secret', enabled: true }] }));
      const post = (image: string) =>
        `{"zh_cn":{"title":"{{ .title }}","content":[[{"tag":"text","text":"CPU at 97%"}],[{"tag":"img","image_key":"${image}"}]]}}`;
      await createTemplates(h, [
        { name: 'feishu_app.alert', channel: 'feishu_app', body: '[Alert] {{ .incident }}' },
        { name: 'feishu_app.chart', channel: 'feishu_app', msgType: 'post', body: post('{{ .chart }}') },
        {
          name: 'feishu_app.card',
          channel: 'feishu_app',
          msgType: 'interactive',
          body: '{"header":{"title":{"tag":"plain_text","content":"{{ .title }}"}},"elements":[{"tag":"img","img_key":"{{ .chart }}","alt":{"tag":"plain_text","content":"chart"}}]}',
        },
        { name: 'feishu_app.broken', channel: 'feishu_app', msgType: 'interactive', body: '{"elements":[' },
        { name: 'fa-email.alert', channel: 'fa-email', body: '[Alert] {{ .incident }}' },
        { name: 'fa-badsecret.alert', channel: 'fa-badsecret', body: '[Alert] {{ .incident }}' },
      ]);
    });
    after(async () => {
      await h.close();
      await fake.close();
      await t.drop();
    });

    /** Sends template `<channel>.<kind>` to open_ids (email addresses on fa-email) and waits until settled. */
    const send = (kind: string, recipients: string[], params: Record<string, unknown> = {}, channel = 'feishu_app') =>
      sendAndSettle(h, {
        channels: { [channel]: { template: `${channel}.${kind}`, params: { incident: 'disk full', title: 'CPU', chart, ...params } } },
        recipients: recipients.map((value) => ({ type: channel === 'fa-email' ? 'email' : 'feishu_user_id', value })),
      });
    const detailsOf = (d: DeliveryItem, attempt = -1) => d.attemptLog.at(attempt)!.details as Record<string, unknown>;
    const messageFor = (d: DeliveryItem) => fake.messages.find((m) => m.messageId === detailsOf(d).message_id)!;

    test('the README curl examples work verbatim: two users messaged, then buzzed in the app', async () => {
      const headers = { 'Content-Type': 'application/json', 'X-App-Id': 'notify-console', 'X-App-Secret': 'dev-secret' };
      await waitFor(async () => (await fetch(`${h.url}/api/v1/templates`, { headers })).status === 200);
      const template = await fetch(`${h.url}/api/v1/templates`, {
        method: 'POST',
        headers,
        body: `{
    "name": "feishu-alert",
    "channel": "feishu_app",
    "msgType": "text",
    "body": "[Alert] {{ .incident }} (severity: {{ .severity }})"
  }`,
      });
      assert.equal(template.status, 201);
      const accepted = await fetch(`${h.url}/api/v1/notifications`, {
        method: 'POST',
        headers,
        body: `{
    "idempotencyKey": "incident-001",
    "channels": {
      "feishu_app": {
        "template": "feishu-alert",
        "params": {"incident": "database primary unavailable", "severity": "P0"}
      }
    },
    "recipients": [
      {"type": "feishu_user_id", "value": "ou_xxxxxxxx"},
      {"type": "feishu_user_id", "value": "ou_yyyyyyyy"}
    ]
  }`,
      });
      assert.equal(accepted.status, 200);
      const { notificationId, status } = (await accepted.json()) as { notificationId: string; status: string };
      assert.equal(status, 'accepted');
      const notification = await waitFor(async () => {
        const body = (await (await fetch(`${h.url}/api/v1/notifications/${notificationId}`, { headers })).json()) as {
          status: string;
          deliveries: DeliveryItem[];
        };
        return body.status === 'sent' ? body : undefined;
      });
      const deliveries = (
        (await (await fetch(`${h.url}/api/v1/notifications/${notificationId}/deliveries`, { headers })).json()) as { items: DeliveryItem[] }
      ).items;
      assert.deepEqual(deliveries.map((d) => [d.recipient.value, d.status, d.attempts]).sort(), [
        ['ou_xxxxxxxx', 'sent', 1],
        ['ou_yyyyyyyy', 'sent', 1],
      ]);
      assert.equal(notification.deliveries.length, 2);
      for (const d of deliveries) {
        const message = messageFor(d);
        assert.deepEqual(
          { ...message, messageId: undefined, token: undefined },
          {
            appId: APP_ID,
            receiveIdType: 'open_id',
            receiveId: d.recipient.value,
            msgType: 'text',
            content: { text: '[Alert] database primary unavailable (severity: P0)' },
            uuid: d.id,
            messageId: undefined,
            token: undefined,
          },
        );
        assert.deepEqual(detailsOf(d), { message_id: message.messageId, chat_id: detailsOf(d).chat_id, urgent: 'app' });
        assert.ok(
          fake.urgents.some(
            (u) => u.messageId === message.messageId && u.urgentType === 'app' && u.userIdType === 'open_id' && u.userIds.join() === d.recipient.value,
          ),
        );
      }
    });

    test('receiveIdType email: the address is the receive_id, and no urgent call is made', async () => {
      const urgents = fake.urgents.length;
      const [d] = await send('alert', ['ann@example.com'], {}, 'fa-email');
      assert.equal(d!.status, 'sent');
      assert.deepEqual([messageFor(d!).receiveIdType, messageFor(d!).receiveId], ['email', 'ann@example.com']);
      assert.equal(detailsOf(d!).urgent, undefined);
      assert.equal(fake.urgents.length, urgents);
    });

    test('tenant_access_token: cached, refreshed once an invalid-token answer comes, and before it expires', async () => {
      fake.tokenTtlSeconds = 2;
      // A reset secret voids the token Herald holds: the send is refused once, then goes out with a new one.
      fake.revokeTokens();
      const tokens = fake.requests.token;
      const [first] = await send('alert', [ANN]);
      assert.deepEqual([first!.status, first!.attempts, fake.requests.token - tokens], ['sent', 1, 1]);
      const [second] = await send('alert', [ANN]);
      assert.equal(fake.requests.token - tokens, 1, 'the second send reuses the token');
      assert.equal(messageFor(second!).token, messageFor(first!).token);
      // Herald refreshes once 3/4 of the validity (1.5 s of 2 s) have passed; Feishu then hands out a new one.
      await sleep(1_700);
      const [third] = await send('alert', [ANN]);
      assert.deepEqual([third!.status, third!.attempts, fake.requests.token - tokens], ['sent', 1, 2]);
      assert.notEqual(messageFor(third!).token, messageFor(first!).token);
      fake.tokenTtlSeconds = 7200;
    });

    test('image URLs where an image key belongs are downloaded, uploaded once and replaced by the image_key', async () => {
      const uploads = fake.uploads.length;
      const downloads = fake.downloads.length;
      const posts = await send('chart', [ANN, BO]);
      assert.deepEqual(posts.map((d) => d.status), ['sent', 'sent']);
      assert.equal(fake.uploads.length - uploads, 1, 'both recipients share one upload');
      assert.deepEqual(fake.downloads.slice(downloads), ['/static/chart.png']);
      const key = fake.uploads.at(-1)!.imageKey;
      assert.equal(fake.uploads.at(-1)!.bytes, PNG.length);
      for (const d of posts) {
        assert.deepEqual(messageFor(d).content, {
          zh_cn: { title: 'CPU', content: [[{ tag: 'text', text: 'CPU at 97%' }], [{ tag: 'img', image_key: key }]] },
        });
      }
      // A card's img_key works the same; a redirect to the image is followed.
      const [card] = await send('card', [ANN], { chart: `${fake.url}/moved/chart.png` });
      assert.equal(card!.status, 'sent');
      assert.equal(messageFor(card!).msgType, 'interactive');
      assert.match(messageFor(card!).content.elements[0].img_key, /^img_v2_/);
    });

    test('an image that cannot be fetched or is not an image fails the delivery with the reason, never the URL query', async () => {
      const [missing, notImage] = await Promise.all([
        send('chart', [ANN], { chart: `${fake.url}/static/gone.png?signature=s3cr3t` }),
        send('chart', [ANN], { chart: `${fake.url}/static/notes.txt` }),
      ]);
      assert.equal(missing[0]!.status, 'failed');
      assert.equal(missing[0]!.lastError, `image ${fake.url}/static/gone.png: HTTP 404`);
      assert.ok(!JSON.stringify(missing).includes('s3cr3t'));
      assert.equal(notImage[0]!.status, 'failed');
      assert.match(notImage[0]!.lastError!, /^image upload of .*notes\.txt: code 234011: /);
    });

    test('an urgent failure does not fail the delivery: it is kept as urgent_error', async () => {
      fake.failNext('urgent', { status: 400, code: 230001, msg: 'invalid parameter' });
      fake.failNext('urgent', { status: 503 });
      const deliveries = await send('alert', [ANN, BO]);
      assert.deepEqual(deliveries.map((d) => d.status), ['sent', 'sent']);
      assert.deepEqual(deliveries.map((d) => detailsOf(d).urgent_error).sort(), [
        'urgent_app: HTTP 503',
        'urgent_app: code 230001: invalid parameter',
      ]);
      for (const d of deliveries) assert.equal(detailsOf(d).urgent, undefined);
    });

    test('Feishu answers map to outcomes: rate limits and 5xx retry, gone users are dead, the rest fail', async () => {
      // The scripted 429 answers the next message request: let ou_limited's be that one.
      fake.failNext('message', { status: 429, code: 99991400, msg: 'request trigger frequency limit' });
      const requests = fake.requests.message;
      const limited = send('alert', ['ou_limited']);
      await waitFor(() => fake.requests.message > requests);
      const [rateLimited, outside, left, broken, badSecret] = await Promise.all([
        limited,
        send('alert', ['ou_outside']),
        send('alert', ['ou_left']),
        send('broken', [ANN]),
        send('alert', [ANN], {}, 'fa-badsecret'),
      ]);
      const [r] = rateLimited;
      assert.deepEqual(r!.attemptLog.map((a) => a.outcome), ['retry', 'sent']);
      assert.equal(r!.attemptLog[0]!.error, 'HTTP 429, code 99991400: request trigger frequency limit');
      const [first, second] = r!.attemptLog as unknown as { startedAt: string }[];
      const gap = Date.parse(second!.startedAt) - Date.parse(first!.startedAt);
      assert.ok(gap >= 1_000, `x-ogw-ratelimit-reset: 1 waited ${gap} ms`);
      assert.equal(fake.messages.filter((m) => m.receiveId === 'ou_limited').length, 1);
      assert.deepEqual([outside[0]!.status, outside[0]!.lastError], ['dead', "code 230013: Bot has NO availability to this user. (the user is outside the app's availability range)"]);
      assert.deepEqual([left[0]!.status, left[0]!.lastError], ['dead', 'code 230002: Bot/User can NOT be out of the chat. (the bot or user is not in the chat)']);
      assert.equal(broken[0]!.status, 'failed');
      assert.match(broken[0]!.lastError!, /^template body for msgType interactive is not valid JSON/);
      assert.deepEqual([badSecret[0]!.status, badSecret[0]!.attempts], ['failed', 1]);
      assert.equal(badSecret[0]!.lastError, 'tenant_access_token: code 10014: app secret invalid (check appId and appSecret)');
      assert.ok(!JSON.stringify(badSecret).includes('not-the-app-secret'));
    });

    test('5xx, 230020 and a quota answer: retried, retried, failed', async () => {
      fake.failNext('message', { status: 502 });
      fake.failNext('message', { status: 400, code: 230020, msg: 'message frequency limit' });
      const [retried] = await send('alert', [ANN]);
      assert.deepEqual(retried!.attemptLog.map((a) => [a.outcome, a.error]), [
        ['retry', 'HTTP 502'],
        ['retry', 'code 230020: message frequency limit'],
        ['sent', null],
      ]);
      fake.failNext('message', { status: 400, code: 99991403, msg: 'monthly quota exceeded' });
      const [quota] = await send('alert', [ANN]);
      assert.deepEqual([quota!.status, quota!.attempts], ['failed', 1]);
      assert.deepEqual(detailsOf(quota!).code, 99991403);
      assert.match(String(detailsOf(quota!).log_id), /^20260101/);
    });

    test('no secret or token is ever recorded', async () => {
      const rows = await t.db.query('select a.error, a.details, d.last_error from delivery_attempts a join deliveries d on d.id = a.delivery_id');
      const text = JSON.stringify(rows);
      const tokens = new Set(fake.messages.map((m) => m.token));
      assert.ok(rows.length > 20 && tokens.size >= 2);
      for (const secret of [APP_SECRET, 'not-the-app-secret', ...tokens]) assert.ok(!text.includes(secret), 'a secret was recorded');
    });
  });
}
