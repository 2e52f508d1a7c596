import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ProviderDeps } from '../src/channels/channel.js';
import { sphinxModule, WAITING_KEY_EXCHANGE } from '../src/channels/sphinx.js';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { configErrorNaming } from './helpers/config-error.js';
import { createTemplates, sendAndSettle, startTestHerald, type TestHerald } from './helpers/herald.js';
import { FakeSphinxBot, randomPubkey, type SphinxUser } from './fakes/sphinx.js';

const ADMIN_TOKEN = 'sphinx-admin-token-0123456789';
const LSP = randomPubkey();
// The Sphinx provider uses no inbox.
const NO_DEPS = {} as ProviderDeps;
const RECHECK_MS = 200;

function user(extra: Partial<SphinxUser> = {}): SphinxUser {
  return { pubkey: randomPubkey(), lsp: LSP, scid: String(1_000_000 + Math.floor(Math.random() * 1e6)), ...extra };
}
const contactInfo = (u: SphinxUser) => `${u.pubkey}_${u.lsp}_${u.scid}`;

describe('sphinx provider', () => {
  test('config errors name the field; a recipient is a pubkey, optionally with its route hint', () => {
    assert.throws(
      () => sphinxModule.create('bot', { baseUrl: 'http://x', adminToken: ADMIN_TOKEN, contactPath: '/contact' }, NO_DEPS),
      configErrorNaming('providers.bot.contactPath', ADMIN_TOKEN),
    );
    assert.throws(() => sphinxModule.create('bot', { baseUrl: 'http://x' }, NO_DEPS), /providers\.bot\.adminToken: is required/);
    const p = sphinxModule.create('bot', { baseUrl: 'http://x', adminToken: ADMIN_TOKEN }, NO_DEPS);
    const u = user();
    assert.equal(p.validateTarget({ type: 'sphinx_pubkey', value: u.pubkey }), undefined);
    assert.equal(p.validateTarget({ type: 'sphinx_pubkey', value: contactInfo(u) }), undefined);
    assert.match(p.validateTarget({ type: 'sphinx_pubkey', value: u.pubkey.slice(2) })!, /66-hex-digit/);
    void p.close();
  });
});

for (const backend of BACKENDS) {
  describe(`sphinx v2 bot through the API (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    let bot: FakeSphinxBot;
    let oldBot: FakeSphinxBot;

    before(async () => {
      t = await createTestDb(backend);
      bot = await FakeSphinxBot.start({ adminToken: ADMIN_TOKEN, contactPrefix: '/get_contact/' });
      oldBot = await FakeSphinxBot.start({ adminToken: ADMIN_TOKEN, contactPrefix: '/contact/' });
      const fields = { type: 'sphinx', baseUrl: bot.url, adminToken: ADMIN_TOKEN, contactPath: '/get_contact/{pubkey}', recheckAfter: RECHECK_MS };
      h = await startTestHerald(t.db, {
        channels: {
          sphinx: { provider: 'bot' },
          sphinx_old: { provider: 'old_bot' },
          sphinx_impatient: { provider: 'impatient_bot' },
          sphinx_wrong_token: { provider: 'wrong_token_bot' },
        },
        providers: {
          bot: fields,
          // An older bot, on the default contact path.
          old_bot: { type: 'sphinx', baseUrl: oldBot.url, adminToken: ADMIN_TOKEN },
          // Gives up on a key exchange after about 250 ms (3 checks 100 ms apart).
          impatient_bot: { ...fields, recheckAfter: 100, keyExchangeTimeout: 250 },
          wrong_token_bot: { ...fields, adminToken: 'not-the-admin-token' },
        },
      });
      const channels = ['sphinx', 'sphinx_old', 'sphinx_impatient', 'sphinx_wrong_token'];
      await createTemplates(h, channels.map((channel) => ({ name: `bounty-${channel}`, channel, body: 'Bounty {{ .title }} was assigned to you' })));
    });
    after(async () => {
      await h.close();
      await bot.close();
      await oldBot.close();
      await t.drop();
    });

    /** Sends one notification to `recipient` and returns its delivery once it is final. */
    async function deliver(recipient: string, channel = 'sphinx') {
      const [d] = await sendAndSettle(h, {
        channels: { [channel]: { template: `bounty-${channel}`, params: { title: '#42' } } },
        recipients: [{ type: 'sphinx_pubkey', value: recipient }],
      });
      return d!;
    }

    test('a contact whose key is exchanged gets the DM at once', async () => {
      const [known, old] = [bot.user(user({ exchanged: true })), oldBot.user(user({ exchanged: true }))];
      const [d, dOld] = await Promise.all([deliver(known.pubkey), deliver(old.pubkey, 'sphinx_old')]);
      assert.equal(d.status, 'sent');
      assert.equal(d.attemptLog[0].details.status, 'COMPLETE');
      assert.match(d.attemptLog[0].details.tag, /^[0-9a-f]{16}$/);
      const [dm] = bot.sent.filter((s) => s.dest === known.pubkey);
      assert.deepEqual(dm!.body, { dest: known.pubkey, amt_msat: 0, content: 'Bounty #42 was assigned to you', is_tribe: false, wait: true });
      assert.deepEqual(bot.callsFor(known.pubkey).map((c) => `${c.method} ${c.path.split('#')[0]}`), [
        `GET /get_contact/${known.pubkey}`,
        'POST /send',
      ]);
      assert.equal(dOld.status, 'sent');
      assert.equal(oldBot.callsFor(old.pubkey)[0]!.path, `/contact/${old.pubkey}`);
    });

    test('a new contact waits for the key exchange, is rechecked, and then sent; waiting spends no retries', async () => {
      // The key shows on the 4th lookup after the first /add_contact: check 1 adds and looks
      // once (#1), check 2 looks, re-adds and looks again (#2, #3), check 3 finds it (#4).
      const fresh = bot.user(user({ keyOnLookup: 4 }));
      // Then /send fails once: with maxRetry 2, this retry would be refused had the two waits
      // counted as attempts (3 − 0 > 2).
      bot.script(fresh.pubkey, { status: 200, body: JSON.stringify({ status: 'FAILED', tag: 't0', message: 'route not found' }) });
      const d = await deliver(contactInfo(fresh));
      assert.equal(d.status, 'sent');
      assert.deepEqual(
        d.attemptLog.map((a: { outcome: string; error: string | null }) => [a.outcome, a.error]),
        [
          ['waiting', WAITING_KEY_EXCHANGE],
          ['waiting', WAITING_KEY_EXCHANGE],
          ['retry', 'send: route not found'],
          ['sent', null],
        ],
      );
      const gap = Date.parse(d.attemptLog[1].startedAt) - Date.parse(d.attemptLog[0].startedAt);
      assert.ok(gap >= RECHECK_MS, `rechecked after ${gap} ms`);
      assert.deepEqual(new Set(bot.added.filter((a) => a.startsWith(fresh.pubkey))), new Set([contactInfo(fresh)]));
      assert.equal(bot.sent.filter((s) => s.dest === fresh.pubkey).length, 1);
    });

    test('the route the bot already knows is used to add a contact given by pubkey alone', async () => {
      const routed = bot.user(user({ routeKnown: true, keyOnLookup: 1 }));
      const d = await deliver(routed.pubkey);
      assert.deepEqual([d.status, d.attempts], ['sent', 1]);
      assert.ok(bot.added.includes(contactInfo(routed)));
    });

    test('PENDING counts as sent, with the status kept in the details', async () => {
      const u = bot.user(user({ exchanged: true }));
      bot.script(u.pubkey, { status: 200, body: JSON.stringify({ status: 'PENDING', tag: 'tag-pending-1' }) });
      const d = await deliver(u.pubkey);
      assert.deepEqual([d.status, d.attempts], ['sent', 1]);
      assert.deepEqual(d.attemptLog[0].details, { status: 'PENDING', tag: 'tag-pending-1' });
    });

    test('a contact the bot cannot route to fails; one that never completes the exchange ends dead', async () => {
      const unknown = bot.user(user());
      const silent = bot.user(user());
      const [noRoute, timedOut] = await Promise.all([deliver(unknown.pubkey), deliver(contactInfo(silent), 'sphinx_impatient')]);
      assert.deepEqual([noRoute.status, noRoute.attempts], ['failed', 1]);
      assert.match(noRoute.lastError!, /no route hint/);
      assert.equal(timedOut.status, 'dead');
      // Checked every 100 ms until 250 ms after it was accepted, then given up.
      const outcomes = timedOut.attemptLog.map((a: { outcome: string }) => a.outcome);
      assert.equal(outcomes.at(-1), 'dead');
      assert.ok(outcomes.length >= 3 && outcomes.slice(0, -1).every((o: string) => o === 'waiting'), outcomes.join());
      assert.match(timedOut.lastError!, /key exchange not completed within 250 ms/);
    });

    test('a wrong admin token fails without reaching /send', async () => {
      const u = bot.user(user({ exchanged: true }));
      const d = await deliver(u.pubkey, 'sphinx_wrong_token');
      assert.deepEqual([d.status, d.attempts], ['failed', 1]);
      assert.match(d.lastError!, /contact lookup: HTTP 401 \(check adminToken\)/);
      assert.ok(!JSON.stringify(d).includes('not-the-admin-token'));
      assert.equal(bot.sent.filter((s) => s.dest === u.pubkey).length, 0);
    });
  });
}
