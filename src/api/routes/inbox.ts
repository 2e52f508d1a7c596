import type { FastifyInstance } from 'fastify';
import type { InboxMessage } from '../../inbox/store.js';
import { notFound } from '../errors.js';
import type { ApiDeps } from '../server.js';

const HEARTBEAT_MS = 15_000;
const REPLAY_LIMIT = 500;
const MESSAGE_ID = /^[1-9][0-9]{0,18}$/;

type UserParams = { Params: { userId: string } };
type MessageParams = { Params: { userId: string; id: string } };

const listSchema = {
  querystring: {
    type: 'object',
    properties: {
      unseen: { enum: ['true', 'false'] },
      limit: { type: 'string', pattern: '^[1-9][0-9]{0,2}$' },
      cursor: { type: 'string', pattern: MESSAGE_ID.source },
    },
  },
} as const;

/** The in-app inbox of one user of the calling app, and a live stream of its new messages. */
export function inboxRoutes(deps: Pick<ApiDeps, 'inbox' | 'inboxLive'>) {
  return async (app: FastifyInstance) => {
    const streams = new Set<import('node:http').ServerResponse>();
    // Streams never end by themselves: close them so a shutdown does not wait on them.
    app.addHook('preClose', async () => {
      for (const res of streams) res.end();
    });
    app.get<UserParams & { Querystring: { unseen?: string; limit?: string; cursor?: string } }>(
      '/inbox/:userId/messages',
      { schema: listSchema },
      async (request) =>
        deps.inbox.list(request.appId, request.params.userId, {
          unseen: request.query.unseen === 'true',
          limit: Math.min(Number(request.query.limit ?? 50), 200),
          before: request.query.cursor,
        }),
    );
    app.get<UserParams>('/inbox/:userId/count', async (request) => ({
      unseen: await deps.inbox.countUnseen(request.appId, request.params.userId),
    }));
    for (const [action, seen] of [['seen', true], ['unseen', false]] as const) {
      app.post<MessageParams>(`/inbox/:userId/messages/:id/${action}`, async (request) => {
        const { userId, id } = request.params;
        const message = MESSAGE_ID.test(id) ? await deps.inbox.setSeen(request.appId, userId, id, seen) : undefined;
        if (!message) throw notFound(`message ${id}`);
        return message;
      });
    }
    app.post<UserParams>('/inbox/:userId/seen-all', async (request) => ({
      updated: await deps.inbox.seenAll(request.appId, request.params.userId),
    }));

    // Server-sent events: each new message as `event: message`, its id as the event id, so a
    // client reconnecting with Last-Event-ID first gets what it missed.
    app.get<UserParams>('/inbox/:userId/stream', async (request, reply) => {
      const { appId } = request;
      const { userId } = request.params;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(': connected\n\n');
      streams.add(res);
      const write = (m: InboxMessage): void => {
        res.write(`id: ${m.id}\nevent: message\ndata: ${JSON.stringify(m)}\n\n`);
      };
      // Messages announced while the missed ones are read back wait, and are sent unless the replay
      // already had them. Ids are not compared otherwise: two messages stored at once may commit
      // (and be announced) in either order.
      const buffered: InboxMessage[] = [];
      let replaying = true;
      const unsubscribe = deps.inboxLive.subscribe(appId, userId, (m) => (replaying ? buffered.push(m) : write(m)));
      const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
      request.raw.on('close', () => {
        clearInterval(heartbeat);
        unsubscribe();
        streams.delete(res);
      });
      const replayed = new Set<string>();
      const lastEventId = request.headers['last-event-id'];
      if (typeof lastEventId === 'string' && MESSAGE_ID.test(lastEventId)) {
        for (const m of await deps.inbox.since(appId, userId, lastEventId, REPLAY_LIMIT)) {
          replayed.add(m.id);
          write(m);
        }
      }
      replaying = false;
      for (const m of buffered) if (!replayed.has(m.id)) write(m);
    });
  };
}
