import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ProviderDeps } from '../src/channels/channel.js';
import { telegramModule } from '../src/channels/telegram.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { createTemplates, sendAndSettle, startTestHerald, type TestHerald } from './helpers/herald.js';
import { FakeTelegram } from './fakes/telegram.js';

const TOKEN = '7100000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
// Well-formed, but not a bot the API knows.
const REVOKED = '7100000002:AAFrevokedrevokedrevokedrevoked0000';
// The Telegram provider uses no inbox.
const NO_DEPS = {} as ProviderDeps;

describe('telegram provider', () => {
  test('declares the Bot API broadcast limit, and a config error never quotes the token', () => {
    const p = telegramModule.create('tg', { botToken: TOKEN }, NO_DEPS);
    assert.deepEqual(p.rateLimit, { limit: 30, intervalMs: 1000 });
    assert.deepEqual(p.recipientTypes, ['telegram_chat_id']);
    assert.equal(p.validateTarget({ type: 'telegram_chat_id', value: '-1001234567890' }), undefined);
    assert.equal(p.validateTarget({ type: 'telegram_chat_id', value: '@herald_news' }), undefined);
    assert.match(p.validateTarget({ type: 'telegram_chat_id', value: 'herald news' })!, /chat id/);
    void p.close();
    const bad = 'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
    assert.throws(() => telegramModule.create('tg', { botToken: bad }, NO_DEPS), configErrorNaming('providers.tg.botToken', bad));
  });
});

for (const backend of BACKENDS) {
  describe(`telegram channel through the API (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let tg: FakeTelegram;

    before(async () => {
      t = await createTestDb(backend);
      tg = await FakeTelegram.start([TOKEN]);
      h = await startTestHerald(t.db, {
        channels: {
          telegram: { provider: 'tg' },
          telegram_revoked: { provider: 'tg_revoked' },
          telegram_misrouted: { provider: 'tg_misrouted' },
        },
        providers: {
          tg: { type: 'telegram', botToken: TOKEN, baseUrl: tg.url },
          tg_revoked: { type: 'telegram', botToken: REVOKED, baseUrl: tg.url },
          // A baseUrl pointing at the wrong server, which echoes the path (and so the token) back.
          tg_misrouted: { type: 'telegram', botToken: TOKEN, baseUrl: `${tg.url}/proxy` },
        },
      });
      const templates = [
        { name: 'html', channel: 'telegram', msgType: 'HTML', body: '<b>{{ .title }}</b> is {{ .state }}' },
        { name: 'plain', channel: 'telegram', body: '{{ .title }} is {{ .state }}.' },
        { name: 'mdv2', channel: 'telegram', msgType: 'MarkdownV2', body: '*{{ .title }}* is {{ .state }}.' },
        { name: 'plain', channel: 'telegram_revoked', body: '{{ .title }}' },
        { name: 'plain', channel: 'telegram_misrouted', body: '{{ .title }}' },
      ];
      await createTemplates(h, templates.map((tpl) => ({ ...tpl, name: `${tpl.channel}-${tpl.name}` })));
    });
    after(async () => {
      await h.close();
      await tg.close();
      await t.drop();
    });

    /** Sends one notification to `chatId` and returns its delivery once it is final. */
    async function deliver(chatId: string, template: string, channel = 'telegram') {
      const [d] = await sendAndSettle(h, {
        channels: { [channel]: { template: `${channel}-${template}`, params: { title: 'db-1', state: 'down' } } },
        recipients: [{ type: 'telegram_chat_id', value: chatId }],
      });
      return d!;
    }

    test('a message is sent with the template msgType as parse_mode', async () => {
      const [html, plain] = await Promise.all([deliver('1001', 'html'), deliver('1002', 'plain')]);
      assert.equal(html.status, 'sent');
      assert.equal(typeof html.attemptLog[0].details.messageId, 'number');
      assert.deepEqual(
        tg.to('1001').map((m) => [m.text, m.parseMode]),
        [['<b>db-1</b> is down', 'HTML']],
      );
      assert.equal(plain.status, 'sent');
      assert.deepEqual(
        tg.to('1002').map((m) => [m.text, m.parseMode]),
        [['db-1 is down.', undefined]],
      );
    });

    test('entities Telegram cannot parse fail the message', async () => {
      const d = await deliver('1003', 'mdv2');
      assert.equal(d.status, 'failed');
      assert.equal(d.attempts, 1);
      assert.match(d.lastError!, /HTTP 400: Bad Request: can't parse entities: Character '-' is reserved/);
    });

    test('a blocked, kicked or unknown chat is dead', async () => {
      tg.blocked.add('2001');
      tg.kicked.add('-2002');
      tg.missing.add('2003');
      const ds = await Promise.all(['2001', '-2002', '2003'].map((id) => deliver(id, 'plain')));
      assert.deepEqual(
        ds.map((d) => [d.status, d.attempts]),
        [['dead', 1], ['dead', 1], ['dead', 1]],
      );
      assert.match(ds[0].lastError!, /bot was blocked by the user/);
      assert.match(ds[1].lastError!, /bot was kicked/);
      assert.match(ds[2].lastError!, /chat not found/);
    });

    test('flood control waits retry_after seconds; a gateway error is retried', async () => {
      const flood = { status: 429, body: JSON.stringify({ ok: false, error_code: 429, description: 'Too Many Requests: retry after 1', parameters: { retry_after: 1 } }) };
      tg.script('3001', flood);
      tg.script('3002', { status: 502, headers: { 'content-type': 'text/html' }, body: '<html>Bad Gateway</html>' });
      const [a, b] = await Promise.all([deliver('3001', 'plain'), deliver('3002', 'plain')]);
      assert.deepEqual([a.status, a.attempts, a.attemptLog[0].outcome], ['sent', 2, 'retry']);
      assert.deepEqual([b.status, b.attempts, b.attemptLog[0].outcome], ['sent', 2, 'retry']);
      const [first, second] = tg.requests.filter((r) => r.chatId === '3001');
      assert.equal(first!.status, 429);
      assert.ok(second!.at - first!.at >= 1000, `retried after ${second!.at - first!.at} ms`);
    });

    test('a group that became a supergroup is sent to at its new id, which the details report', async () => {
      tg.migrated.set('-4001', '-1004001');
      const d = await deliver('-4001', 'plain');
      assert.equal(d.status, 'sent');
      assert.equal(d.attemptLog[0].details.migratedToChatId, '-1004001');
      assert.equal(tg.to('-1004001').length, 1);
    });

    test('an unknown token fails, and the token never shows in errors or details', async () => {
      const [revoked, misrouted] = await Promise.all([
        deliver('5001', 'plain', 'telegram_revoked'),
        deliver('5002', 'plain', 'telegram_misrouted'),
      ]);
      assert.equal(revoked.status, 'failed');
      assert.match(revoked.lastError!, /HTTP 401: Unauthorized/);
      assert.equal(misrouted.status, 'failed');
      assert.match(misrouted.attemptLog[0].details.body, /Cannot POST \/proxy\/bot<bot-token>\/sendMessage/);
      const everything = JSON.stringify([revoked, misrouted]);
      assert.ok(!everything.includes(TOKEN.split(':')[1]!) && !everything.includes(REVOKED.split(':')[1]!), everything);
    });

    test('a chat id that is neither numeric nor @name is refused by the API', async () => {
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { telegram: { template: 'telegram-plain', params: { title: 'x', state: 'y' } } },
        recipients: [{ type: 'telegram_chat_id', value: 'not a chat' }],
      });
      assert.equal(res.status, 400);
      assert.match(JSON.stringify(res.body), /recipients\[0\]\.value/);
    });
  });
}
