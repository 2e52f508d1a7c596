import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ProviderDeps } from '../src/channels/channel.js';
import { escapeFor, smsHttpModule } from '../src/channels/sms-http.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { createTemplates, sendAndSettle, startTestHerald, type TestHerald } from './helpers/herald.js';
import { FakeSmsGateway } from './fakes/sms-http.js';

const API_KEY = 'gw-secret-0123456789';
// Quotes, a backslash, a newline, &, %, markup and non-ASCII: each breaks a body escaped wrongly.
const TRICKY = 'He said "hi" \\o/\n& 100% <ok> ✓';
// The SMS gateway provider uses no inbox.
const NO_DEPS = {} as ProviderDeps;

describe('sms_http provider', () => {
  test('values are escaped for the Content-Type the gateway reads', () => {
    assert.equal(escapeFor('application/json; charset=utf-8')(TRICKY), 'He said \\"hi\\" \\\\o/\\n& 100% <ok> ✓');
    assert.equal(escapeFor('application/x-www-form-urlencoded')('a b&c=d'), 'a%20b%26c%3Dd');
    assert.equal(escapeFor('text/xml')(`<a href="x">&'</a>`), '&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;');
    assert.equal(escapeFor('text/plain')(TRICKY), TRICKY);
  });

  test('a config error names the field and never quotes a header value', () => {
    const url = 'https://sms.example.com/send';
    const cases: [Record<string, unknown>, string][] = [
      [{ url: 'sms.example.com', bodyTemplate: '{}' }, 'url'],
      [{ url }, 'bodyTemplate'],
      [{ url, method: 'GET', bodyTemplate: '{}' }, 'bodyTemplate'],
      [{ url, method: 'PATCH', bodyTemplate: '{}' }, 'method'],
      [{ url, bodyTemplate: '{"to":"{{ phone "}' }, 'bodyTemplate'],
      [{ url, bodyTemplate: '{}', headers: { Authorization: { token: API_KEY } } }, 'headers.Authorization'],
      [{ url, bodyTemplate: '{}', headers: { 'bad header': API_KEY } }, 'headers.bad header'],
    ];
    for (const [fields, key] of cases) {
      assert.throws(() => smsHttpModule.create('gw', fields, NO_DEPS), configErrorNaming(`providers.gw.${key}`, API_KEY));
    }
  });

  test('a template naming a param the notification lacks fails the delivery before any request', async () => {
    const p = smsHttpModule.create('gw', { url: 'http://127.0.0.1:9/send', bodyTemplate: '{"region":"{{ params.region }}"}' }, NO_DEPS);
    try {
      const outcome = await p.send({
        delivery: { id: 'd1', notificationId: 'n1', appId: 'a', channel: 'sms', recipient: { type: 'phone', value: '+14155550100' }, attempt: 1, acceptedAt: new Date() },
        content: { subject: '', body: 'hi', msgType: '', templateCode: '', params: {} },
        signal: AbortSignal.timeout(1000),
      });
      assert.equal(outcome.kind, 'failed');
      assert.match((outcome as { error: string }).error, /gateway template failed to render: .*region/);
    } finally {
      await p.close();
    }
  });
});

for (const backend of BACKENDS) {
  describe(`sms_http gateways through the API (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let gw: FakeSmsGateway;

    before(async () => {
      t = await createTestDb(backend);
      gw = await FakeSmsGateway.start(API_KEY);
      h = await startTestHerald(t.db, {
        channels: { sms_json: { provider: 'gw_json' }, sms_form: { provider: 'gw_form' }, sms_get: { provider: 'gw_get' } },
        providers: {
          gw_json: {
            type: 'sms_http',
            url: `${gw.url}/v1/sms`,
            headers: { Authorization: `Bearer ${API_KEY}` },
            bodyTemplate: '{"to":"{{ phone }}","text":"{{ body }}","sign":"{{ subject }}","template":"{{ templateCode }}","vars":{{ params | json | raw }}}',
          },
          gw_form: {
            type: 'sms_http',
            url: `${gw.url}/form/send`,
            headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Api-Key': API_KEY },
            bodyTemplate: 'to={{ phone }}&msg={{ body }}',
          },
          gw_get: { type: 'sms_http', method: 'GET', url: `${gw.url}/get/send?to={{ phone }}&msg={{ body }}`, headers: { 'X-Api-Key': API_KEY } },
        },
      });
      await createTemplates(h, ['sms_json', 'sms_form', 'sms_get'].map((channel) => ({
        name: `code-${channel}`,
        channel,
        subject: 'Herald',
        body: '{{ .text }}',
        templateCode: 'SMS_0042',
      })));
    });
    after(async () => {
      await h.close();
      await gw.close();
      await t.drop();
    });

    /** Sends one notification to `phone` and returns its delivery once it is final. */
    async function deliver(phone: string, channel: string, text = 'Your code is 123456') {
      const [d] = await sendAndSettle(h, {
        channels: { [channel]: { template: `code-${channel}`, params: { text, code: 123456 } } },
        recipients: [{ type: 'phone', value: phone }],
      });
      return d!;
    }

    test('JSON, form and GET gateways receive the message intact', async () => {
      const [json, form, get] = await Promise.all([
        deliver('+8613800138000', 'sms_json', TRICKY),
        deliver('13800138001', 'sms_form', TRICKY),
        deliver('+447700900123', 'sms_get', TRICKY),
      ]);
      assert.deepEqual([json.status, form.status, get.status], ['sent', 'sent', 'sent']);
      assert.match(json.attemptLog[0].details.body, /"messageId":"msg-\d+"/);
      assert.deepEqual(gw.to('+8613800138000')[0]!.fields, {
        to: '+8613800138000',
        text: TRICKY,
        sign: 'Herald',
        template: 'SMS_0042',
        vars: { text: TRICKY, code: 123456 },
      });
      assert.deepEqual(gw.to('13800138001')[0]!.fields, { to: '13800138001', msg: TRICKY });
      assert.deepEqual(gw.to('+447700900123')[0]!.fields, { to: '+447700900123', msg: TRICKY });
    });

    test('429 waits its Retry-After and 5xx is retried; another 4xx fails', async () => {
      gw.script('+14155550301', { status: 429, body: '{"error":"slow down"}', headers: { 'retry-after': '1' } });
      gw.script('+14155550302', { status: 502, body: 'bad gateway' });
      gw.script('+14155550303', { status: 422, body: '{"error":"number blacklisted"}' });
      const [throttled, down, refused] = await Promise.all([
        deliver('+14155550301', 'sms_json'),
        deliver('+14155550302', 'sms_json'),
        deliver('+14155550303', 'sms_json'),
      ]);
      assert.deepEqual([throttled.status, throttled.attempts, throttled.attemptLog[0].outcome], ['sent', 2, 'retry']);
      assert.deepEqual([down.status, down.attempts, down.attemptLog[0].outcome], ['sent', 2, 'retry']);
      assert.deepEqual([refused.status, refused.attempts, refused.lastError], ['failed', 1, 'HTTP 422']);
      assert.match(refused.attemptLog[0].details.body, /number blacklisted/);
      const [first, second] = gw.to('+14155550301');
      assert.ok(second!.at - first!.at >= 1000, `retried after ${second!.at - first!.at} ms`);
    });

    test('a phone value that is not digits is refused by the API', async () => {
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { sms_json: { template: 'code-sms_json', params: { text: 'x' } } },
        recipients: [{ type: 'phone', value: '+1 (415) 555-0100' }],
      });
      assert.equal(res.status, 400);
      assert.match(JSON.stringify(res.body), /recipients\[0\]\.value/);
    });
  });
}
