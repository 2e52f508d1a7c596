import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ProviderDeps } from '../src/channels/channel.js';
import { discordModule } from '../src/channels/discord.js';
import { slackModule } from '../src/channels/slack.js';
import {
  discordRateLimited,
  slackError,
  startFakeDiscord,
  startFakeSlack,
  type ChatFake,
} from './fakes/chat-webhooks.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { channelPerProvider, createTemplates, hostAlert, sendAndSettle, startTestHerald, type DeliveryItem, type TestHerald } from './helpers/herald.js';

const NO_DEPS = {} as ProviderDeps;
const SLACK_HOOK = '/services/T0001/B0001/hookSecret0001';
const DISCORD = { id: '112233445566778899', token: 'discordTokenSecret-0001' };

describe('slack and discord providers', () => {
  test('post to their channel alone: group channels mapping no recipient type', async () => {
    const slack = slackModule.create('s', { webhookUrl: `https://hooks.slack.com${SLACK_HOOK}` }, NO_DEPS);
    const discord = discordModule.create('d', { webhookUrl: `https://discord.com/api/webhooks/${DISCORD.id}/${DISCORD.token}` }, NO_DEPS);
    for (const p of [slack, discord]) {
      assert.equal(p.postsToGroup, true);
      assert.deepEqual(p.recipientTypes, []);
      await p.close();
    }
    // About one message a second per Slack webhook, bursts allowed; Discord publishes no fixed rate.
    assert.deepEqual(slack.rateLimit, { limit: 60, intervalMs: 60_000 });
    assert.equal(discord.rateLimit, undefined);
  });

  test('refuse a missing or non-http(s) webhookUrl, never quoting it', () => {
    for (const module of [slackModule, discordModule]) {
      for (const webhookUrl of [undefined, 42, 'hooks.slack.com/services/T/B/url-secret', 'ftp://hooks.slack.com/url-secret']) {
        assert.throws(() => module.create('x', { webhookUrl }, NO_DEPS), configErrorNaming('providers.x.webhookUrl', 'url-secret'));
      }
    }
  });
});

for (const backend of BACKENDS) {
  describe(`slack and discord channels (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let slack: ChatFake;
    let discord: ChatFake;

    before(async () => {
      t = await createTestDb(backend);
      slack = await startFakeSlack([{ path: SLACK_HOOK }, { path: '/services/T0001/B0002/archived', archived: true }]);
      discord = await startFakeDiscord([DISCORD]);
      const providers = {
        slack: { type: 'slack', webhookUrl: `${slack.url}${SLACK_HOOK}` },
        'slack-archived': { type: 'slack', webhookUrl: `${slack.url}/services/T0001/B0002/archived` },
        'slack-revoked': { type: 'slack', webhookUrl: `${slack.url}/services/T0001/B0003/revoked` },
        discord: { type: 'discord', webhookUrl: `${discord.url}/api/webhooks/${DISCORD.id}/${DISCORD.token}` },
        'discord-reset': { type: 'discord', webhookUrl: `${discord.url}/api/webhooks/${DISCORD.id}/an-old-token` },
        'discord-deleted': { type: 'discord', webhookUrl: `${discord.url}/api/webhooks/998877/${DISCORD.token}` },
      };
      h = await startTestHerald(t.db, {
        channels: channelPerProvider(providers),
        providers,
      });
      await createTemplates(h, [
        ...Object.keys(providers).map((channel) => ({ name: `${channel}.alert`, channel, subject: 'Disk full', body: 'Disk full on {{ .host }}' })),
        {
          name: 'slack.blocks',
          channel: 'slack',
          msgType: 'blocks',
          subject: 'Disk full',
          body: '[{"type":"section","text":{"type":"mrkdwn","text":"*Disk full* on {{ .host }}"}}]',
        },
        { name: 'slack.broken', channel: 'slack', msgType: 'blocks', body: '[{"type":"section", {{ .host }}' },
        { name: 'slack.empty', channel: 'slack', body: '{{ .host }}' },
        { name: 'discord.embed', channel: 'discord', msgType: 'embed', subject: 'Disk full', body: 'Disk full on {{ .host }}' },
        {
          name: 'discord.embeds',
          channel: 'discord',
          msgType: 'embeds',
          body: '[{"title":"Disk full","fields":[{"name":"host","value":"{{ .host }}"}]}]',
        },
        { name: 'discord.plain', channel: 'discord', body: '{{ .host }}' },
      ]);
    });
    after(async () => {
      await h.close();
      await slack.close();
      await discord.close();
      await t.drop();
    });

    /** A notification to `channel` with its template of that kind (templates are named `<channel>.<kind>`). */
    const alert = (channel: string, kind = 'alert', host = 'db-1', recipients: object[] = []) => hostAlert(channel, recipients, kind, host);
    const one = async (request: object): Promise<DeliveryItem> => {
      const deliveries = await sendAndSettle(h, request);
      assert.equal(deliveries.length, 1);
      return deliveries[0]!;
    };
    const bodiesSince = (fake: ChatFake, from: number) => fake.posts.slice(from).map((p) => p.body);

    describe('slack', () => {
      test('text: one post to the channel whatever the recipients', async () => {
        const from = slack.posts.length;
        const d = await one(alert('slack', 'alert', 'db-1', [{ type: 'phone', value: '13800000001' }]));
        assert.deepEqual([d.recipient, d.status], [{ type: 'group', value: 'slack' }, 'sent']);
        assert.deepEqual(d.attemptLog[0]!.details, { status: 200, body: 'ok' });
        assert.deepEqual(bodiesSince(slack, from), [{ text: 'Disk full\nDisk full on db-1' }]);
      });

      test('blocks: the JSON body as blocks, the subject as the fallback text', async () => {
        const from = slack.posts.length;
        assert.equal((await one(alert('slack', 'blocks'))).status, 'sent');
        assert.deepEqual(bodiesSince(slack, from), [
          { text: 'Disk full', blocks: [{ type: 'section', text: { type: 'mrkdwn', text: '*Disk full* on db-1' } }] },
        ]);
      });

      test('blocks whose body is not JSON: failed without a post', async () => {
        const from = slack.requests.length;
        const d = await one(alert('slack', 'broken'));
        assert.equal(d.status, 'failed');
        assert.equal(d.lastError, 'msgType blocks needs a body that renders to a JSON array');
        assert.equal(slack.requests.length, from);
      });

      test('no_text and invalid_payload: failed', async () => {
        const empty = await one(alert('slack', 'empty', ''));
        assert.deepEqual([empty.status, empty.lastError], ['failed', 'HTTP 400: no_text']);
        slack.failNext(slackError(400, 'invalid_payload'));
        const invalid = await one(alert('slack'));
        assert.deepEqual([invalid.status, invalid.lastError], ['failed', 'HTTP 400: invalid_payload']);
      });

      test('channel_is_archived, no_service (webhook revoked) and invalid_token: dead', async () => {
        const archived = await one(alert('slack-archived'));
        assert.deepEqual([archived.status, archived.lastError], ['dead', 'HTTP 410: channel_is_archived']);
        const revoked = await one(alert('slack-revoked'));
        assert.deepEqual([revoked.status, revoked.lastError], ['dead', 'HTTP 404: no_service']);
        slack.failNext(slackError(403, 'invalid_token'));
        const token = await one(alert('slack'));
        assert.deepEqual([token.status, token.lastError], ['dead', 'HTTP 403: invalid_token']);
      });

      test('429 with Retry-After: 1 is retried no sooner than 1 s later; 500 is retried', async () => {
        // The configured backoff is 50 ms, so only the header explains a 1 s gap.
        const from = slack.requests.length;
        slack.failNext(slackError(429, 'rate_limited', { 'retry-after': '1' }), slackError(500, 'service_unavailable'));
        const d = await one(alert('slack'));
        assert.equal(d.status, 'sent');
        assert.deepEqual(
          d.attemptLog.map((a) => [a.outcome, a.error]),
          [
            ['retry', 'HTTP 429: rate_limited'],
            ['retry', 'HTTP 500: service_unavailable'],
            ['sent', null],
          ],
        );
        const [first, second] = slack.requests.slice(from);
        assert.ok(second!.receivedAt - first!.receivedAt >= 1_000, `retried after ${second!.receivedAt - first!.receivedAt} ms`);
      });
    });

    describe('discord', () => {
      test('text: one post with content, pinging no one', async () => {
        const from = discord.posts.length;
        const d = await one(alert('discord'));
        assert.deepEqual([d.recipient, d.status], [{ type: 'group', value: 'discord' }, 'sent']);
        assert.deepEqual(d.attemptLog[0]!.details, { status: 204, body: '' });
        assert.deepEqual(bodiesSince(discord, from), [{ content: 'Disk full\nDisk full on db-1', allowed_mentions: { parse: [] } }]);
      });

      test('embed from subject and body, and embeds from a JSON body', async () => {
        const from = discord.posts.length;
        assert.equal((await one(alert('discord', 'embed'))).status, 'sent');
        assert.equal((await one(alert('discord', 'embeds'))).status, 'sent');
        assert.deepEqual(bodiesSince(discord, from), [
          { embeds: [{ title: 'Disk full', description: 'Disk full on db-1' }], allowed_mentions: { parse: [] } },
          { embeds: [{ title: 'Disk full', fields: [{ name: 'host', value: 'db-1' }] }], allowed_mentions: { parse: [] } },
        ]);
      });

      test('content over 2000 characters (50035) and an empty message (50006): failed', async () => {
        const long = await one(alert('discord', 'plain', 'x'.repeat(2001)));
        assert.deepEqual([long.status, long.lastError], ['failed', 'HTTP 400: 50035 Invalid Form Body']);
        const empty = await one(alert('discord', 'plain', ''));
        assert.deepEqual([empty.status, empty.lastError], ['failed', 'HTTP 400: 50006 Cannot send an empty message']);
      });

      test('404 Unknown Webhook and 401 Invalid Webhook Token: dead, the token in no record', async () => {
        const deleted = await one(alert('discord-deleted'));
        assert.deepEqual([deleted.status, deleted.lastError], ['dead', 'HTTP 404: 10015 Unknown Webhook']);
        const reset = await one(alert('discord-reset'));
        assert.deepEqual([reset.status, reset.lastError], ['dead', 'HTTP 401: 50027 Invalid Webhook Token']);
        assert.ok(!JSON.stringify([deleted, reset]).includes(DISCORD.token));
      });

      test('429 waits the body retry_after (0.3 s, the header says 1 s); 502 is retried', async () => {
        const from = discord.requests.length;
        discord.failNext(discordRateLimited(0.3), { status: 502, body: 'error code: 502' });
        const d = await one(alert('discord'));
        assert.equal(d.status, 'sent');
        assert.deepEqual(
          d.attemptLog.map((a) => [a.outcome, a.error]),
          [
            ['retry', 'HTTP 429: You are being rate limited.'],
            ['retry', 'HTTP 502'],
            ['sent', null],
          ],
        );
        const [first, second] = discord.requests.slice(from);
        const gap = second!.receivedAt - first!.receivedAt;
        assert.ok(gap >= 300 && gap < 1_000, `retried after ${gap} ms`);
      });
    });
  });
}
