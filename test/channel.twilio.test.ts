import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ProviderDeps } from '../src/channels/channel.js';
import { toTwiml, twilioMode, twilioModule } from '../src/channels/twilio.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { createTemplates, sendAndSettle, startTestHerald, type TestHerald } from './helpers/herald.js';
import { FakeTwilio, twilioError } from './fakes/twilio.js';

const ACCOUNT = { sid: `AC${'a1'.repeat(16)}`, token: 'twilio-auth-token-0123456789abcdef', numbers: ['+15005550006'] };
const FROM = ACCOUNT.numbers[0]!;
// The Twilio provider uses no inbox.
const NO_DEPS = {} as ProviderDeps;

describe('twilio provider', () => {
  test('without mode, a channel named voice calls and any other sends messages', () => {
    assert.equal(twilioMode(undefined, 'voice'), 'voice');
    assert.equal(twilioMode(undefined, 'sms'), 'sms');
    assert.equal(twilioMode(undefined, 'oncall'), 'sms');
    assert.equal(twilioMode('voice', 'oncall'), 'voice');
    assert.equal(twilioMode('sms', 'voice'), 'sms');
  });

  test('the call text is XML-escaped into TwiML', () => {
    assert.equal(toTwiml(`Disk <full> & "hot" on db's`), '<Response><Say>Disk &lt;full&gt; &amp; &quot;hot&quot; on db&apos;s</Say></Response>');
  });

  test('a config error names the field and never quotes the auth token', () => {
    const base = { accountSid: ACCOUNT.sid, authToken: ACCOUNT.token, from: FROM };
    const cases: [Record<string, unknown>, string][] = [
      [{ ...base, accountSid: 'SK123' }, 'accountSid'],
      [{ ...base, authToken: '' }, 'authToken'],
      [{ ...base, from: '5005550006' }, 'from'],
      [{ ...base, mode: 'fax' }, 'mode'],
    ];
    for (const [fields, key] of cases) {
      assert.throws(() => twilioModule.create('tw', fields, NO_DEPS), configErrorNaming(`providers.tw.${key}`, ACCOUNT.token));
    }
  });
});

for (const backend of BACKENDS) {
  describe(`twilio sms and voice through the API (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let tw: FakeTwilio;

    before(async () => {
      t = await createTestDb(backend);
      tw = await FakeTwilio.start(ACCOUNT);
      const provider = { type: 'twilio', accountSid: ACCOUNT.sid, authToken: ACCOUNT.token, from: FROM, baseUrl: tw.url };
      h = await startTestHerald(t.db, {
        channels: {
          sms: { provider: 'twilio' },
          voice: { provider: 'twilio' },
          oncall: { provider: 'twilio_calls' },
          sms_stale: { provider: 'twilio_stale' },
        },
        providers: {
          twilio: provider,
          twilio_calls: { ...provider, mode: 'voice' },
          // An auth token that was rotated away.
          twilio_stale: { ...provider, authToken: 'an-old-auth-token-000000000000000' },
        },
      });
      await createTemplates(h, ['sms', 'voice', 'oncall', 'sms_stale'].map((channel) => ({ name: `alert-${channel}`, channel, body: '{{ .text }}' })));
    });
    after(async () => {
      await h.close();
      await tw.close();
      await t.drop();
    });

    /** Sends one notification to `phone` and returns its delivery once it is final. */
    async function deliver(phone: string, channel: string, text = 'Disk full on db-1') {
      const [d] = await sendAndSettle(h, {
        channels: { [channel]: { template: `alert-${channel}`, params: { text } } },
        recipients: [{ type: 'phone', value: phone }],
      });
      return d!;
    }

    test('the sms channel sends a message; voice and a mode: voice provider place calls', async () => {
      const said = `Disk <full> & "hot" on db's`;
      const [sms, call, oncall] = await Promise.all([
        deliver('+14155550101', 'sms'),
        deliver('+14155550102', 'voice', said),
        deliver('+14155550103', 'oncall'),
      ]);
      assert.equal(sms.status, 'sent');
      assert.match(sms.attemptLog[0].details.sid, /^SM[0-9a-f]{32}$/);
      assert.equal(sms.attemptLog[0].details.state, 'queued');
      assert.deepEqual(
        tw.to('+14155550101').map((r) => [r.resource, r.from, r.text]),
        [['Messages', FROM, 'Disk full on db-1']],
      );
      assert.equal(call.status, 'sent');
      assert.match(call.attemptLog[0].details.sid, /^CA[0-9a-f]{32}$/);
      assert.deepEqual(
        tw.to('+14155550102').map((r) => [r.resource, r.text]),
        [['Calls', said]],
      );
      assert.equal(oncall.status, 'sent');
      assert.equal(tw.to('+14155550103')[0]!.resource, 'Calls');
    });

    test('an invalid or unsubscribed number is dead', async () => {
      tw.script('+15005550001', twilioError(400, 21211, "The 'To' number +15005550001 is not a valid phone number."));
      tw.unsubscribed.add('+14155550201');
      const [invalid, stopped] = await Promise.all([deliver('+15005550001', 'sms'), deliver('+14155550201', 'sms')]);
      assert.deepEqual([invalid.status, invalid.attempts, invalid.attemptLog[0].details.code], ['dead', 1, 21211]);
      assert.deepEqual([stopped.status, stopped.attempts, stopped.attemptLog[0].details.code], ['dead', 1, 21610]);
      assert.match(stopped.lastError!, /HTTP 400 \(21610\): Attempt to send to unsubscribed recipient/);
    });

    test('20429 waits its Retry-After, and a 5xx is retried', async () => {
      tw.script('+14155550301', { ...twilioError(429, 20429, 'Too Many Requests'), headers: { 'retry-after': '1' } });
      tw.script('+14155550302', { status: 503, body: '<html>Service Unavailable</html>', headers: { 'content-type': 'text/html' } });
      const [throttled, down] = await Promise.all([deliver('+14155550301', 'sms'), deliver('+14155550302', 'sms')]);
      assert.deepEqual([throttled.status, throttled.attempts, throttled.attemptLog[0].outcome], ['sent', 2, 'retry']);
      assert.deepEqual([down.status, down.attempts, down.attemptLog[0].outcome], ['sent', 2, 'retry']);
      const [first, second] = tw.to('+14155550301');
      assert.ok(second!.at - first!.at >= 1000, `retried after ${second!.at - first!.at} ms`);
    });

    test('bad credentials (20003) and a body over 1 600 characters fail', async () => {
      const [stale, long] = await Promise.all([
        deliver('+14155550401', 'sms_stale'),
        deliver('+14155550402', 'sms', 'x'.repeat(1601)),
      ]);
      assert.deepEqual([stale.status, stale.attempts, stale.attemptLog[0].details.code], ['failed', 1, 20003]);
      assert.match(stale.lastError!, /check accountSid and authToken/);
      assert.ok(!JSON.stringify(stale).includes('an-old-auth-token'));
      assert.deepEqual([long.status, long.attemptLog[0].details.code], ['failed', 21617]);
    });

    test('a number not in E.164 is refused by the API', async () => {
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { sms: { template: 'alert-sms', params: { text: 'x' } } },
        recipients: [{ type: 'phone', value: '4155550101' }],
      });
      assert.equal(res.status, 400);
      assert.match(JSON.stringify(res.body), /E\.164/);
    });
  });
}
