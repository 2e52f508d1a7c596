import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { apnsModule, apnsSandboxModule } from '../src/channels/apns.js';
import { FakeApns } from './fakes/apns.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { createTemplates, postNotification, settledDeliveries, startTestHerald, type TestHerald } from './helpers/herald.js';

// Keys are made once per file: P-256 like Apple's .p8 keys.
const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const KEY_A = p256();
const KEY_B = p256();
const KEY_UNKNOWN = p256();
const TEAM = 'TEAM123456';
const TOPIC = 'com.example.herald';
const KID = { main: 'KEYAAAAAAA', sandbox: 'KEYBBBBBBB', wrong: 'KEYCCCCCCC' };

const deviceToken = () => randomBytes(32).toString('hex');

describe('apns provider configuration', () => {
  const base = { teamId: TEAM, keyId: KID.main, privateKey: KEY_A, topic: TOPIC };
  const refuse = (fields: Record<string, unknown>, key: string) => {
    const secrets = Object.values(fields).filter((v): v is string => typeof v === 'string' && v.length > 12);
    assert.throws(() => apnsModule.create('apple', { ...base, ...fields }, {} as never), configErrorNaming(key, ...secrets));
  };

  test('names the bad key and never echoes a private key', () => {
    refuse({ teamId: undefined }, 'providers.apple.teamId');
    refuse({ keyId: 'short' }, 'providers.apple.keyId');
    refuse({ topic: '' }, 'providers.apple.topic');
    refuse({ privateKey: KEY_A.slice(0, 60) + KEY_A.slice(90) }, 'providers.apple.privateKey');
    refuse({ privateKey: 'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg-not-a-file' }, 'providers.apple.privateKey');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    refuse({ privateKey: rsa }, 'providers.apple.privateKey');
    refuse({ host: 'ftp://api.push.apple.com' }, 'providers.apple.host');
  });

  test('an unreachable host is a retry, not a throw', async () => {
    const provider = apnsModule.create('apple', { ...base, host: 'http://127.0.0.1:1' }, {} as never);
    const outcome = await provider.send({
      delivery: { id: 'd', notificationId: 'n', appId: 'a', channel: 'apns', recipient: { type: 'apns_token', value: deviceToken() }, attempt: 1, acceptedAt: new Date() },
      content: { subject: 's', body: 'b', msgType: 'text', templateCode: '', params: {} },
      signal: AbortSignal.timeout(2_000),
    });
    assert.equal(outcome.kind, 'retry');
    assert.match((outcome as { error: string }).error, /^APNs request failed: .*ECONNREFUSED/);
    await provider.close();
  });

  test('apns and apns_sandbox are two provider types for apns_token recipients', async () => {
    for (const module of [apnsModule, apnsSandboxModule]) {
      const provider = module.create('apple', base, {} as never);
      assert.equal(provider.type, module.type);
      assert.deepEqual(provider.recipientTypes, ['apns_token']);
      assert.equal(provider.validateTarget({ type: 'apns_token', value: deviceToken() }), undefined);
      assert.equal(provider.validateTarget({ type: 'apns_token', value: deviceToken().toUpperCase() }), undefined);
      assert.ok(provider.validateTarget({ type: 'apns_token', value: 'zz'.repeat(32) }));
      assert.ok(provider.validateTarget({ type: 'apns_token', value: 'abc' }));
      await provider.close();
    }
  });
});

for (const backend of BACKENDS) {
  describe(`apns channel (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let fake: FakeApns;
    let dir: string;
    before(async () => {
      t = await createTestDb(backend);
      fake = await FakeApns.start(
        [
          { keyId: KID.main, teamId: TEAM, publicKey: createPublicKey(KEY_A) },
          { keyId: KID.sandbox, teamId: TEAM, publicKey: createPublicKey(KEY_B) },
          // Apple knows this key id, but the provider signs with a key that is not its own.
          { keyId: KID.wrong, teamId: TEAM, publicKey: createPublicKey(KEY_A) },
        ],
        [TOPIC, `${TOPIC}.voip`],
      );
      dir = mkdtempSync(join(tmpdir(), 'herald-apns-'));
      const keyFile = join(dir, `AuthKey_${KID.sandbox}.p8`);
      writeFileSync(keyFile, KEY_B);
      const common = { teamId: TEAM, topic: TOPIC, host: fake.url };
      h = await startTestHerald(t.db, {
        channels: {
          apns: { provider: 'apple' },
          apns_dev: { provider: 'apple_dev' },
          apns_wrong: { provider: 'apple_wrong' },
        },
        providers: {
          apple: { type: 'apns', keyId: KID.main, privateKey: KEY_A, ...common },
          apple_dev: { type: 'apns_sandbox', keyId: KID.sandbox, privateKey: keyFile, ...common },
          apple_wrong: { type: 'apns', keyId: KID.wrong, privateKey: KEY_UNKNOWN, ...common },
        },
      });
      await createTemplates(h, ['apns', 'apns_dev', 'apns_wrong'].map((channel) => ({
        name: `build-${channel}`,
        channel,
        subject: 'Build {{ .build }}',
        body: '{{ .failed }} tests failed',
      })));
    });
    after(async () => {
      await h.close();
      await fake.close();
      await t.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Sends the build template on `channel` to these device tokens; returns the notification id. */
    async function notify(tokens: string[], params: Record<string, unknown> = {}, channel = 'apns'): Promise<string> {
      return postNotification(h, {
        channels: { [channel]: { template: `build-${channel}`, params: { build: 7, failed: 3, ...params } } },
        recipients: tokens.map((value) => ({ type: 'apns_token', value })),
      });
    }
    const settled = (id: string) => settledDeliveries(h, id);

    const outcomes = (d: any) => d.attemptLog.map((a: { outcome: string }) => a.outcome);

    test('200: alert payload, default headers and custom data arrive; apns-id is kept; one connection and one token serve every send', async () => {
      const tokens = [deviceToken(), deviceToken(), deviceToken()];
      const first = await settled(await notify(tokens, { data: { buildId: '1234', url: 'https://ci.example/7' } }));
      const second = await settled(await notify([tokens[0]!]));
      for (const d of [...first, ...second]) {
        assert.equal(d.status, 'sent');
        assert.equal(d.attempts, 1);
        assert.equal(d.provider, 'apple');
        assert.deepEqual(d.attemptLog[0].details, { status: 200, apnsId: d.id });
      }
      const push = fake.at(tokens[1]!)[0]!;
      assert.equal(push.status, 200);
      assert.equal(push.kid, KID.main);
      assert.deepEqual(push.payload, { buildId: '1234', url: 'https://ci.example/7', aps: { alert: { title: 'Build 7', body: '3 tests failed' } } });
      assert.equal(push.headers['apns-topic'], TOPIC);
      assert.equal(push.headers['apns-push-type'], 'alert');
      assert.equal(push.headers['apns-priority'], '10');
      assert.equal(push.headers['apns-expiration'], undefined);
      assert.equal(push.headers['apns-collapse-id'], undefined);
      assert.equal(push.headers['apns-id'], first.find((d) => d.recipient.value === tokens[1])!.id);
      assert.equal(fake.connections(KID.main), 1);
      assert.equal(new Set(fake.pushes.map((p) => p.jwt)).size, 1);
    });

    test('params.apns sets push type, priority, expiration, collapse id, topic and extra aps keys', async () => {
      const [alert, silent] = [deviceToken(), deviceToken()];
      await settled(
        await notify([alert], {
          apns: { pushType: 'voip', topic: `${TOPIC}.voip`, expiration: 1900000000, collapseId: 'build-7', aps: { badge: 3, sound: 'default' } },
        }),
      );
      await settled(await notify([silent], { apns: { pushType: 'background' }, data: { sync: true } }));
      const a = fake.at(alert)[0]!;
      assert.equal(a.status, 200);
      assert.equal(a.headers['apns-push-type'], 'voip');
      assert.equal(a.headers['apns-topic'], `${TOPIC}.voip`);
      assert.equal(a.headers['apns-priority'], '10');
      assert.equal(a.headers['apns-expiration'], '1900000000');
      assert.equal(a.headers['apns-collapse-id'], 'build-7');
      assert.deepEqual(a.payload, { aps: { alert: { title: 'Build 7', body: '3 tests failed' }, badge: 3, sound: 'default' } });
      const s = fake.at(silent)[0]!;
      assert.equal(s.status, 200);
      assert.equal(s.headers['apns-push-type'], 'background');
      assert.equal(s.headers['apns-priority'], '5', 'Apple requires priority 5 for background pushes');
      assert.deepEqual(s.payload, { sync: true, aps: { 'content-available': 1 } });
    });

    test('410 Unregistered, 400 BadDeviceToken and 400 DeviceTokenNotForTopic: dead after one attempt', async () => {
      const [gone, bad, other] = [deviceToken(), deviceToken(), deviceToken()];
      fake.reply(gone, { status: 410, reason: 'Unregistered', timestamp: 1_700_000_000_000 });
      fake.reply(bad, { status: 400, reason: 'BadDeviceToken' });
      fake.reply(other, { status: 400, reason: 'DeviceTokenNotForTopic' });
      const items = await settled(await notify([gone, bad, other]));
      const by = (token: string) => items.find((d) => d.recipient.value === token)!;
      for (const [token, reason, status] of [[gone, 'Unregistered', 410], [bad, 'BadDeviceToken', 400], [other, 'DeviceTokenNotForTopic', 400]] as const) {
        const d = by(token);
        assert.equal(d.status, 'dead');
        assert.equal(d.attempts, 1);
        assert.deepEqual(outcomes(d), ['dead']);
        assert.equal(d.lastError, `APNs ${status} ${reason}`);
        assert.equal(fake.at(token).length, 1);
      }
      assert.equal(by(gone).attemptLog[0].details.timestamp, 1_700_000_000_000);
    });

    test('other 4xx fail without a retry: bad priority, oversized collapse id, payload too large, malformed params', async () => {
      const tokens = [deviceToken(), deviceToken(), deviceToken(), deviceToken()];
      const [priority, collapse, large, malformed] = await Promise.all([
        notify([tokens[0]!], { apns: { priority: 7 } }),
        notify([tokens[1]!], { apns: { collapseId: 'c'.repeat(65) } }),
        notify([tokens[2]!], { data: { blob: 'x'.repeat(5000) } }),
        notify([tokens[3]!], { apns: 'urgent' }),
      ]).then((ids) => Promise.all(ids.map(async (id) => (await settled(id))[0])));
      assert.equal(priority.lastError, 'APNs 400 BadPriority');
      assert.equal(collapse.lastError, 'APNs 400 BadCollapseId');
      assert.equal(large.lastError, 'APNs 413 PayloadTooLarge');
      assert.equal(malformed.lastError, 'params.apns must be an object');
      for (const d of [priority, collapse, large, malformed]) {
        assert.equal(d.status, 'failed');
        assert.equal(d.attempts, 1);
      }
      assert.deepEqual(tokens.map((x) => fake.at(x).length), [1, 1, 1, 0]);
    });

    test('429 and 5xx retry; IdleTimeout retries on a new connection; retries run out to dead', async () => {
      const [throttled, idle, down] = [deviceToken(), deviceToken(), deviceToken()];
      fake.reply(throttled, { status: 429, reason: 'TooManyRequests' });
      fake.reply(idle, { status: 400, reason: 'IdleTimeout' });
      fake.reply(down, { status: 500, reason: 'InternalServerError' }, { status: 503, reason: 'ServiceUnavailable' }, { status: 500, reason: 'InternalServerError' });
      const connectionsBefore = fake.connections(KID.main);
      const [t1] = await settled(await notify([throttled]));
      assert.equal(t1.status, 'sent');
      assert.deepEqual(outcomes(t1), ['retry', 'sent']);
      const [i1] = await settled(await notify([idle]));
      assert.deepEqual(outcomes(i1), ['retry', 'sent']);
      assert.equal(fake.connections(KID.main), connectionsBefore + 1);
      const [d1] = await settled(await notify([down]));
      assert.equal(d1.status, 'dead');
      assert.deepEqual(outcomes(d1), ['retry', 'retry', 'retry']);
      assert.equal(d1.lastError, 'gave up after 3 attempts: APNs 500 InternalServerError');
      assert.equal(fake.at(down).length, 3);
    });

    test('403 ExpiredProviderToken: a new token is signed and the push repeated in the same attempt, then reused', async () => {
      const [a, b] = [deviceToken(), deviceToken()];
      await settled(await notify([deviceToken()])); // make sure this provider holds a token
      fake.expireTokensSeen();
      const [d] = await settled(await notify([a]));
      assert.equal(d.status, 'sent');
      assert.equal(d.attempts, 1);
      const [refused, accepted] = fake.at(a);
      assert.equal(refused!.reason, 'ExpiredProviderToken');
      assert.equal(accepted!.status, 200);
      assert.notEqual(refused!.jwt, accepted!.jwt);
      await settled(await notify([b]));
      assert.equal(fake.at(b)[0]!.jwt, accepted!.jwt);
    });

    test('403 InvalidProviderToken: one new token is tried, then the delivery fails; no new token within 20 min', async () => {
      const [a, b] = [deviceToken(), deviceToken()];
      const [d] = await settled(await notify([a], {}, 'apns_wrong'));
      assert.equal(d.status, 'failed');
      assert.equal(d.attempts, 1);
      assert.equal(d.lastError, 'APNs 403 InvalidProviderToken');
      assert.deepEqual(fake.at(a).map((p) => p.reason), ['InvalidProviderToken', 'InvalidProviderToken']);
      assert.notEqual(fake.at(a)[0]!.jwt, fake.at(a)[1]!.jwt);
      const [e] = await settled(await notify([b], {}, 'apns_wrong'));
      assert.equal(e.status, 'failed');
      assert.equal(fake.at(b).length, 1);
      assert.equal(fake.at(b)[0]!.jwt, fake.at(a)[1]!.jwt);
    });

    test('GOAWAY: the next push opens a new connection and is sent', async () => {
      await settled(await notify([deviceToken()]));
      const before = fake.connections(KID.main);
      await fake.goaway('Shutdown');
      const [d] = await settled(await notify([deviceToken()]));
      assert.equal(d.status, 'sent');
      assert.equal(fake.connections(KID.main), before + 1);
    });

    test('apns_sandbox reads its .p8 key from a file path', async () => {
      const token = deviceToken();
      const [d] = await settled(await notify([token], {}, 'apns_dev'));
      assert.equal(d.status, 'sent');
      assert.equal(d.provider, 'apple_dev');
      assert.equal(fake.at(token)[0]!.kid, KID.sandbox);
    });

    test('a device token that is not hex is refused at the API', async () => {
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { apns: { template: 'build-apns', params: {} } },
        recipients: [{ type: 'apns_token', value: 'not-a-token' }],
      });
      assert.equal(res.status, 400);
      assert.equal(res.body.field, 'recipients[0].value');
    });
  });
}
