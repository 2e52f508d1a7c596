import type { FastifyInstance } from 'fastify';
import type { NotificationRequest } from '../../engine/accept.js';
import type { DeliveryQueries } from '../../engine/deliveries.js';
import type { ApiDeps } from '../server.js';

const sendSchema = {
  body: {
    type: 'object',
    required: ['channels', 'recipients'],
    properties: {
      idempotencyKey: { type: 'string', minLength: 1, maxLength: 255 },
      channels: {
        type: 'object',
        minProperties: 1,
        additionalProperties: {
          type: 'object',
          required: ['template'],
          properties: {
            template: { type: 'string', minLength: 1 },
            params: { type: 'object' },
          },
        },
      },
      fallback: { type: 'array', minItems: 2, uniqueItems: true, items: { type: 'string', minLength: 1 } },
      recipients: {
        type: 'array',
        maxItems: 10_000,
        items: {
          type: 'object',
          required: ['type', 'value'],
          properties: {
            type: { type: 'string', minLength: 1 },
            value: { type: 'string', minLength: 1 },
            person: { type: 'string', minLength: 1 },
          },
        },
      },
    },
  },
} as const;

export function notificationRoutes(deps: Pick<ApiDeps, 'engine'> & { queries: DeliveryQueries }) {
  return async (app: FastifyInstance) => {
    app.post<{ Body: NotificationRequest }>('/notifications', { schema: sendSchema }, async (request) => {
      const { notificationId } = await deps.engine.accept(request.appId, request.body);
      return { notificationId, status: 'accepted' };
    });
    app.get<{ Params: { id: string } }>('/notifications/:id', async (request) =>
      deps.queries.notification(request.appId, request.params.id),
    );
    app.get<{ Params: { id: string } }>('/notifications/:id/deliveries', async (request) => ({
      items: await deps.queries.deliveriesWithAttempts(request.appId, request.params.id),
    }));
  };
}
