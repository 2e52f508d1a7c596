import type { FastifyInstance } from 'fastify';
import { DELIVERY_STATES, type DeliveryQueries, type DeliveryState } from '../../engine/deliveries.js';

const listSchema = {
  querystring: {
    type: 'object',
    required: ['status'],
    properties: {
      status: { enum: DELIVERY_STATES },
      channel: { type: 'string' },
      limit: { type: 'string', pattern: '^[1-9][0-9]{0,2}$' },
      cursor: { type: 'string' },
    },
  },
} as const;

/** Dead letters and other delivery lists, and re-queueing a dead delivery by hand. */
export function deliveryRoutes(deps: { queries: DeliveryQueries }) {
  return async (app: FastifyInstance) => {
    app.get<{ Querystring: { status: DeliveryState; channel?: string; limit?: string; cursor?: string } }>(
      '/deliveries',
      { schema: listSchema },
      async (request) => {
        const q = request.query;
        return deps.queries.byStatus(request.appId, {
          status: q.status,
          channel: q.channel,
          limit: Math.min(Number(q.limit ?? 50), 500),
          before: q.cursor,
        });
      },
    );
    app.post<{ Params: { id: string } }>('/deliveries/:id/retry', async (request) =>
      deps.queries.retry(request.appId, request.params.id),
    );
  };
}
