import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../server.js';

export function healthRoutes(deps: Pick<ApiDeps, 'db' | 'metrics'>) {
  return async (app: FastifyInstance) => {
    app.get('/health', async (_request, reply) => {
      try {
        await deps.db.query('select 1');
        return { status: 'healthy' };
      } catch {
        return reply.status(503).send({ status: 'unhealthy', message: 'database unreachable' });
      }
    });
    app.get('/metrics', async (_request, reply) => {
      reply.header('content-type', deps.metrics.registry.contentType);
      return deps.metrics.registry.metrics();
    });
  };
}
