import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fcmModule } from '../src/channels/fcm.js';
import { FakeFcm } from './fakes/fcm.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { createTemplates, postNotification, settledDeliveries, startTestHerald, type TestHerald } from './helpers/herald.js';

// RSA keys are slow to make (~50 ms each): once per file.
const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const KEY = rsa();
const SHORT_KEY = rsa();
const UNKNOWN_KEY = rsa();
const PROJECT = 'herald-test';

/** A service-account key file as the Firebase console hands it out. */
function serviceAccount(name: string, privateKey: string, tokenUri: string, projectId = PROJECT) {
  return {
    type: 'service_account',
    project_id: projectId,
    private_key_id: `kid-${name}`,
    private_key: privateKey,
    client_email: `${name}@${PROJECT}.iam.gserviceaccount.com`,
    client_id: '1234567890',
    token_uri: tokenUri,
  };
}

const deviceToken = () => `${randomBytes(8).toString('base64url')}:APA91b${randomBytes(100).toString('base64url')}`;

describe('fcm provider configuration', () => {
  const account = JSON.stringify(serviceAccount('cfg', KEY, 'http://127.0.0.1:1/token'));
  const refuse = (fields: Record<string, unknown>, key: string) =>
    assert.throws(() => fcmModule.create('firebase', { serviceAccount: account, ...fields }, {} as never), configErrorNaming(key, 'PRIVATE KEY'));

  test('names the bad key and never echoes the service account', () => {
    refuse({ serviceAccount: undefined }, 'providers.firebase.serviceAccount');
    refuse({ serviceAccount: `{"private_key": ${JSON.stringify(KEY)}` }, 'providers.firebase.serviceAccount');
    refuse({ serviceAccount: '/nonexistent/service-account.json' }, 'providers.firebase.serviceAccount');
    const withoutEmail = { ...serviceAccount('cfg', KEY, 'http://127.0.0.1:1/token'), client_email: undefined };
    refuse({ serviceAccount: JSON.stringify(withoutEmail) }, 'providers.firebase.serviceAccount.client_email');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    refuse({ serviceAccount: JSON.stringify(serviceAccount('cfg', ec, 'http://127.0.0.1:1/token')) }, 'providers.firebase.serviceAccount.private_key');
    const noProject = JSON.stringify({ ...serviceAccount('cfg', KEY, 'http://127.0.0.1:1/token'), project_id: undefined });
    refuse({ serviceAccount: noProject }, 'providers.firebase.projectId');
  });

  test('serves fcm_token and fcm_topic recipients', async () => {
    const provider = fcmModule.create('firebase', { serviceAccount: account }, {} as never);
    assert.deepEqual(provider.recipientTypes, ['fcm_token', 'fcm_topic']);
    assert.equal(provider.validateTarget({ type: 'fcm_token', value: deviceToken() }), undefined);
    assert.ok(provider.validateTarget({ type: 'fcm_token', value: 'has spaces in it' }));
    assert.equal(provider.validateTarget({ type: 'fcm_topic', value: 'news' }), undefined);
    assert.equal(provider.validateTarget({ type: 'fcm_topic', value: '/topics/weather-eu_2' }), undefined);
    assert.ok(provider.validateTarget({ type: 'fcm_topic', value: 'no/slashes' }));
    await provider.close();
  });
});

for (const backend of BACKENDS) {
  describe(`fcm channel (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let fake: FakeFcm;
    let dir: string;
    before(async () => {
      t = await createTestDb(backend);
      const pub = (pem: string) => createPublicKey(pem);
      fake = await FakeFcm.start(PROJECT, [
        { clientEmail: `main@${PROJECT}.iam.gserviceaccount.com`, privateKeyId: 'kid-main', publicKey: pub(KEY) },
        // Tokens inside the 5-minute renewal margin: every send must fetch a new one.
        { clientEmail: `short@${PROJECT}.iam.gserviceaccount.com`, privateKeyId: 'kid-short', publicKey: pub(SHORT_KEY), expiresIn: 120 },
        // Google knows this account, but the key file holds a key that is not its own.
        { clientEmail: `wrong@${PROJECT}.iam.gserviceaccount.com`, privateKeyId: 'kid-wrong', publicKey: pub(KEY) },
      ]);
      dir = mkdtempSync(join(tmpdir(), 'herald-fcm-'));
      const shortFile = join(dir, 'short.json');
      writeFileSync(shortFile, JSON.stringify(serviceAccount('short', SHORT_KEY, fake.tokenUri)));
      h = await startTestHerald(t.db, {
        channels: {
          fcm: { provider: 'firebase' },
          fcm_short: { provider: 'firebase_short' },
          fcm_wrong: { provider: 'firebase_wrong' },
          fcm_elsewhere: { provider: 'firebase_elsewhere' },
        },
        providers: {
          firebase: {
            type: 'fcm',
            serviceAccount: JSON.stringify(serviceAccount('main', KEY, fake.tokenUri, 'ignored-default')),
            projectId: PROJECT,
            baseUrl: fake.url,
          },
          firebase_short: { type: 'fcm', serviceAccount: shortFile, baseUrl: fake.url },
          firebase_wrong: { type: 'fcm', serviceAccount: JSON.stringify(serviceAccount('wrong', UNKNOWN_KEY, fake.tokenUri)), baseUrl: fake.url },
          // A project this account may not send for.
          firebase_elsewhere: {
            type: 'fcm',
            serviceAccount: JSON.stringify(serviceAccount('main', KEY, fake.tokenUri)),
            projectId: 'someone-elses',
            baseUrl: fake.url,
          },
        },
      });
      await createTemplates(h, ['fcm', 'fcm_short', 'fcm_wrong', 'fcm_elsewhere'].map((channel) => ({
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

    const grantsFor = (name: string) => fake.grants.filter((g) => g.clientEmail === `${name}@${PROJECT}.iam.gserviceaccount.com`);

    /** Sends the build template on `channel`; returns the notification id. */
    async function notify(
      recipients: { type: string; value: string }[],
      params: Record<string, unknown> = {},
      channel = 'fcm',
    ): Promise<string> {
      return postNotification(h, { channels: { [channel]: { template: `build-${channel}`, params: { build: 7, failed: 3, ...params } } }, recipients });
    }
    const tokens = (...values: string[]) => values.map((value) => ({ type: 'fcm_token', value }));

    const settled = (id: string) => settledDeliveries(h, id);
    const outcomes = (d: any) => d.attemptLog.map((a: { outcome: string }) => a.outcome);

    test('200 to a token: notification, string data and platform blocks arrive; one access token serves every send', async () => {
      const [a, b] = [deviceToken(), deviceToken()];
      const params = { data: { buildId: 1234, red: true, branch: 'main' }, fcm: { android: { priority: 'HIGH', ttl: '3600s' } } };
      const first = await settled(await notify(tokens(a, b), params));
      const second = await settled(await notify(tokens(a)));
      for (const d of [...first, ...second]) {
        assert.equal(d.status, 'sent');
        assert.equal(d.attempts, 1);
        assert.match(d.attemptLog[0].details.name, new RegExp(`^projects/${PROJECT}/messages/0:`));
      }
      const send = fake.at(b)[0]!;
      assert.equal(send.status, 200);
      assert.deepEqual(send.message, {
        token: b,
        notification: { title: 'Build 7', body: '3 tests failed' },
        data: { buildId: '1234', red: 'true', branch: 'main' },
        android: { priority: 'HIGH', ttl: '3600s' },
      });
      assert.equal(send.headers['content-type'], 'application/json');
      assert.deepEqual(grantsFor('main').map((g) => g.status), [200]);
    });

    test('200 to a topic: /topics/ is stripped; a topic name with bad characters is refused at the API', async () => {
      const [d] = await settled(await notify([{ type: 'fcm_topic', value: '/topics/builds-eu' }]));
      assert.equal(d.status, 'sent');
      assert.equal(fake.at('builds-eu')[0]!.message!.topic, 'builds-eu');
      assert.equal(fake.at('builds-eu')[0]!.message!.token, undefined);
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { fcm: { template: 'build-fcm', params: {} } },
        recipients: [{ type: 'fcm_topic', value: 'builds eu!' }],
      });
      assert.equal(res.status, 400);
      assert.equal(res.body.field, 'recipients[0].value');
    });

    test('UNREGISTERED, SENDER_ID_MISMATCH and INVALID_ARGUMENT about the token: dead after one attempt', async () => {
      const [gone, foreign, malformed] = [deviceToken(), deviceToken(), deviceToken()];
      fake.reply(gone, { status: 404, rpcStatus: 'NOT_FOUND', errorCode: 'UNREGISTERED', message: 'Requested entity was not found.' });
      fake.reply(foreign, { status: 403, rpcStatus: 'PERMISSION_DENIED', errorCode: 'SENDER_ID_MISMATCH', message: 'SenderId mismatch' });
      fake.reply(malformed, {
        status: 400,
        rpcStatus: 'INVALID_ARGUMENT',
        errorCode: 'INVALID_ARGUMENT',
        message: 'The registration token is not a valid FCM registration token',
      });
      const items = await settled(await notify(tokens(gone, foreign, malformed)));
      const by = (token: string) => items.find((d) => d.recipient.value === token)!;
      assert.equal(by(gone).lastError, 'FCM 404 UNREGISTERED: Requested entity was not found.');
      assert.equal(by(foreign).lastError, 'FCM 403 SENDER_ID_MISMATCH: SenderId mismatch');
      for (const token of [gone, foreign, malformed]) {
        assert.equal(by(token).status, 'dead');
        assert.deepEqual(outcomes(by(token)), ['dead']);
        assert.equal(fake.at(token).length, 1, 'SENDER_ID_MISMATCH is a 403 but no token refresh');
      }
    });

    test('other errors fail: INVALID_ARGUMENT about the message, the same error to a topic, THIRD_PARTY_AUTH_ERROR, bad params', async () => {
      const [badTtl, apnsAuth, badParams] = [deviceToken(), deviceToken(), deviceToken()];
      fake.reply('alerts', {
        status: 400,
        rpcStatus: 'INVALID_ARGUMENT',
        errorCode: 'INVALID_ARGUMENT',
        message: 'The registration token is not a valid FCM registration token',
      });
      fake.reply(apnsAuth, { status: 401, rpcStatus: 'UNAUTHENTICATED', errorCode: 'THIRD_PARTY_AUTH_ERROR', message: 'Auth error from APNS or Web Push Service' });
      const grantsBefore = grantsFor('main').length;
      const ids = await Promise.all([
        notify(tokens(badTtl), { fcm: { android: { ttl: 'soon' } } }),
        notify([{ type: 'fcm_topic', value: 'alerts' }]),
        notify(tokens(apnsAuth)),
        notify(tokens(badParams), { data: ['not', 'an', 'object'] }),
      ]);
      const [ttl, topic, auth, params] = await Promise.all(ids.map(async (id) => (await settled(id))[0]));
      assert.match(ttl.lastError!, /^FCM 400 INVALID_ARGUMENT: Invalid value at 'message.android.ttl'/);
      assert.equal(topic.lastError, 'FCM 400 INVALID_ARGUMENT: The registration token is not a valid FCM registration token');
      assert.equal(auth.lastError, 'FCM 401 THIRD_PARTY_AUTH_ERROR: Auth error from APNS or Web Push Service');
      assert.equal(params.lastError, 'params.data must be an object');
      for (const d of [ttl, topic, auth, params]) {
        assert.equal(d.status, 'failed');
        assert.equal(d.attempts, 1);
      }
      assert.equal(fake.at(apnsAuth).length, 1);
      assert.equal(fake.at(badParams).length, 0);
      assert.equal(grantsFor('main').length, grantsBefore, 'THIRD_PARTY_AUTH_ERROR is not about Herald\'s token');
    });

    test('QUOTA_EXCEEDED with Retry-After: 1 is retried no sooner than 1 s later', async () => {
      // The configured backoff is 50 ms, so only the header can explain a 1 s gap.
      const token = deviceToken();
      fake.reply(token, { status: 429, rpcStatus: 'RESOURCE_EXHAUSTED', errorCode: 'QUOTA_EXCEEDED', message: 'Quota exceeded.', headers: { 'retry-after': '1' } });
      const [d] = await settled(await notify(tokens(token)));
      assert.deepEqual(outcomes(d), ['retry', 'sent']);
      const [first, second] = fake.at(token);
      assert.ok(second!.at - first!.at >= 1_000, `retried after ${second!.at - first!.at} ms`);
    });

    test('UNAVAILABLE and INTERNAL retry with backoff; retries run out to dead', async () => {
      const [flaky, down] = [deviceToken(), deviceToken()];
      const unavailable = { status: 503, rpcStatus: 'UNAVAILABLE', errorCode: 'UNAVAILABLE', message: 'The service is currently unavailable.' };
      const internal = { status: 500, rpcStatus: 'INTERNAL', errorCode: 'INTERNAL', message: 'Internal error encountered.' };
      fake.reply(flaky, unavailable, internal);
      fake.reply(down, internal, unavailable, internal);
      const [f] = await settled(await notify(tokens(flaky)));
      assert.deepEqual(outcomes(f), ['retry', 'retry', 'sent']);
      const [d] = await settled(await notify(tokens(down)));
      assert.equal(d.status, 'dead');
      assert.deepEqual(outcomes(d), ['retry', 'retry', 'retry']);
      assert.equal(d.lastError, 'gave up after 3 attempts: FCM 500 INTERNAL: Internal error encountered.');
    });

    test('401 on a revoked access token: a new one is fetched and the send repeated in the same attempt', async () => {
      const token = deviceToken();
      const grantsBefore = grantsFor('main').length;
      fake.revokeTokens();
      const [d] = await settled(await notify(tokens(token)));
      assert.equal(d.status, 'sent');
      assert.equal(d.attempts, 1);
      assert.deepEqual(fake.at(token).map((s) => s.status), [401, 200]);
      assert.equal(grantsFor('main').length, grantsBefore + 1);
    });

    test('403 PERMISSION_DENIED for another project: failed, without fetching another token', async () => {
      const token = deviceToken();
      const [d] = await settled(await notify(tokens(token), {}, 'fcm_elsewhere'));
      assert.equal(d.status, 'failed');
      assert.match(d.lastError!, /^FCM 403 PERMISSION_DENIED: Permission 'cloudmessaging.messages.create' denied/);
      assert.deepEqual(fake.at(token).map((s) => s.status), [403]);
      const [again] = await settled(await notify(tokens(token), {}, 'fcm_elsewhere'));
      assert.equal(again.status, 'failed');
      assert.equal(fake.at(token).length, 2);
      assert.equal(fake.grants.filter((g) => g.at >= fake.at(token)[0]!.at).length, 0, 'the first token is reused');
    });

    test('a key the token endpoint refuses fails the delivery with invalid_grant, and nothing is sent', async () => {
      const token = deviceToken();
      const [d] = await settled(await notify(tokens(token), {}, 'fcm_wrong'));
      assert.equal(d.status, 'failed');
      assert.equal(d.attempts, 1);
      assert.equal(d.lastError, 'token endpoint refused the service account: HTTP 400 invalid_grant Invalid JWT Signature.');
      assert.ok(!JSON.stringify(d).includes('eyJ'), 'no assertion in the record');
      assert.equal(fake.at(token).length, 0);
      assert.deepEqual(grantsFor('wrong').map((g) => g.error), ['invalid_grant']);
    });

    test('a key file path with its project_id; a token expiring within the renewal margin is fetched anew', async () => {
      const [a, b] = [deviceToken(), deviceToken()];
      const [d1] = await settled(await notify(tokens(a), {}, 'fcm_short'));
      const [d2] = await settled(await notify(tokens(b), {}, 'fcm_short'));
      assert.equal(d1.status, 'sent');
      assert.equal(d2.status, 'sent');
      assert.equal(d2.provider, 'firebase_short');
      assert.deepEqual(grantsFor('short').map((g) => g.status), [200, 200]);
    });
  });
}
