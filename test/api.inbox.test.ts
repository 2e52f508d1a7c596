import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BACKENDS, createTestDb, type TestDb } from './helpers/db.js';
import { APP, OTHER_APP, startTestHerald, waitFor, type TestHerald } from './helpers/herald.js';

/** Reads server-sent events from a stream until `count` message events arrived. */
async function readEvents(res: Response, count: number): Promise<{ id: string; data: any }[]> {
  const events: { id: string; data: any }[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = Object.fromEntries(
        block.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]),
      );
      if (fields.event === 'message') events.push({ id: fields.id!, data: JSON.parse(fields.data!) });
    }
  }
  await reader.cancel();
  return events;
}

for (const backend of BACKENDS) {
  describe(`in-app inbox (${backend})`, () => {
    let t: TestDb;
    let h: TestHerald;
    before(async () => {
      t = await createTestDb(backend);
      h = await startTestHerald(t.db);
      await h.call('POST', '/api/v1/templates', { name: 'note', channel: 'inapp', subject: 'Note {{ .n }}', body: 'Body {{ .n }}' });
    });
    after(async () => {
      await h.close();
      await t.drop();
    });

    const notify = async (user: string, n: number) => {
      const res = await h.call('POST', '/api/v1/notifications', {
        channels: { inapp: { template: 'note', params: { n } } },
        recipients: [{ type: 'user_id', value: user }],
      });
      assert.equal(res.status, 200);
    };

    test('messages list newest first, page by cursor, filter unseen, and count', async () => {
      // The inbox lists in the order messages arrived: wait for each before sending the next.
      for (let n = 1; n <= 5; n++) {
        await notify('pat', n);
        await waitFor(async () => (await h.call('GET', '/api/v1/inbox/pat/count')).body.unseen === n);
      }
      const first = await h.call('GET', '/api/v1/inbox/pat/messages?limit=2');
      assert.deepEqual(first.body.items.map((m: { subject: string }) => m.subject), ['Note 5', 'Note 4']);
      const second = await h.call('GET', `/api/v1/inbox/pat/messages?limit=2&cursor=${first.body.nextCursor}`);
      assert.deepEqual(second.body.items.map((m: { subject: string }) => m.subject), ['Note 3', 'Note 2']);
      const last = await h.call('GET', `/api/v1/inbox/pat/messages?limit=2&cursor=${second.body.nextCursor}`);
      assert.equal(last.body.items.length, 1);
      assert.equal(last.body.nextCursor, null);

      const id = first.body.items[0].id;
      const seen = await h.call('POST', `/api/v1/inbox/pat/messages/${id}/seen`);
      assert.ok(seen.body.seenAt);
      assert.equal((await h.call('GET', '/api/v1/inbox/pat/count')).body.unseen, 4);
      const unseen = await h.call('GET', '/api/v1/inbox/pat/messages?unseen=true');
      assert.ok(unseen.body.items.every((m: { id: string }) => m.id !== id));
      assert.equal((await h.call('POST', `/api/v1/inbox/pat/messages/${id}/unseen`)).body.seenAt, null);
      assert.equal((await h.call('POST', '/api/v1/inbox/pat/seen-all')).body.updated, 5);
      assert.equal((await h.call('GET', '/api/v1/inbox/pat/count')).body.unseen, 0);
    });

    test("a message is another user's or another app's to see: 404", async () => {
      await notify('quinn', 1);
      const [m] = await waitFor(async () => {
        const items = (await h.call('GET', '/api/v1/inbox/quinn/messages')).body.items as { id: string }[];
        return items.length > 0 ? items : undefined;
      });
      assert.equal((await h.call('POST', `/api/v1/inbox/pat/messages/${m!.id}/seen`)).status, 404);
      assert.equal((await h.call('POST', `/api/v1/inbox/quinn/messages/${m!.id}/seen`, undefined, OTHER_APP)).status, 404);
      assert.equal((await h.call('POST', '/api/v1/inbox/quinn/messages/abc/seen')).status, 404);
      assert.equal((await h.call('GET', '/api/v1/inbox/quinn/messages?limit=0')).status, 400);
    });

    test('the stream pushes new messages, and replays what a reconnecting client missed', async () => {
      const headers = { 'x-app-id': APP.appId, 'x-app-secret': APP.appSecret };
      const stream = await fetch(`${h.url}/api/v1/inbox/rae/stream`, { headers });
      assert.equal(stream.status, 200);
      assert.match(stream.headers.get('content-type')!, /text\/event-stream/);
      const live = readEvents(stream, 2);
      await notify('rae', 1);
      await notify('rae', 2);
      const events = await live;
      // Two messages stored at once may arrive in either order.
      assert.deepEqual(events.map((e) => e.data.subject).sort(), ['Note 1', 'Note 2']);
      assert.equal(events[0]!.id, events[0]!.data.id);
      const lastId = String(Math.max(...events.map((e) => Number(e.id))));

      await notify('rae', 3);
      await waitFor(async () => (await h.call('GET', '/api/v1/inbox/rae/count')).body.unseen === 3);
      const again = await fetch(`${h.url}/api/v1/inbox/rae/stream`, { headers: { ...headers, 'last-event-id': lastId } });
      const replayed = await readEvents(again, 1);
      assert.equal(replayed[0]!.data.subject, 'Note 3');

      const other = await fetch(`${h.url}/api/v1/inbox/rae/stream`, { headers: { 'x-app-id': OTHER_APP.appId, 'x-app-secret': 'wrong' } });
      assert.equal(other.status, 401);
    });
  });
}
