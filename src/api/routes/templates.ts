import type { FastifyInstance } from 'fastify';
import type { TemplateInput, TemplateStore } from '../../engine/templates.js';

const contentProperties = {
  description: { type: 'string', maxLength: 1000 },
  subject: { type: 'string', maxLength: 10_000 },
  body: { type: 'string', maxLength: 100_000 },
  msgType: { type: 'string', maxLength: 64 },
  templateCode: { type: 'string', maxLength: 255 },
  engine: { enum: ['go', 'liquid'] },
} as const;

const createSchema = {
  body: {
    type: 'object',
    required: ['name', 'channel'],
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 255 },
      channel: { type: 'string', minLength: 1, maxLength: 64 },
      ...contentProperties,
    },
  },
} as const;

// name and channel may be sent (the create shape) but are not changed by an update.
const updateSchema = {
  body: { type: 'object', properties: { name: { type: 'string' }, channel: { type: 'string' }, ...contentProperties } },
} as const;

export function templateRoutes(deps: { templates: TemplateStore }) {
  return async (app: FastifyInstance) => {
    app.post<{ Body: TemplateInput & { name: string; channel: string } }>(
      '/templates',
      { schema: createSchema },
      async (request, reply) => reply.status(201).send(await deps.templates.create(request.appId, request.body)),
    );
    app.get<{ Querystring: { channel?: string } }>('/templates', async (request) => ({
      items: await deps.templates.list(request.appId, request.query.channel),
    }));
    app.get<{ Params: { name: string } }>('/templates/:name', async (request) =>
      deps.templates.get(request.appId, request.params.name),
    );
    app.put<{ Params: { name: string }; Body: TemplateInput }>('/templates/:name', { schema: updateSchema }, async (request) =>
      deps.templates.update(request.appId, request.params.name, request.body),
    );
    app.delete<{ Params: { name: string } }>('/templates/:name', async (request, reply) => {
      await deps.templates.delete(request.appId, request.params.name);
      return reply.status(204).send();
    });
  };
}
