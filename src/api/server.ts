import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Credentials } from '../auth/credentials.js';
import type { Config } from '../config/load.js';
import type { Engine } from '../engine/accept.js';
import type { DeliveryQueries } from '../engine/deliveries.js';
import type { TemplateStore } from '../engine/templates.js';
import type { InboxLive } from '../inbox/live.js';
import type { InboxStore } from '../inbox/store.js';
import type { Metrics } from '../metrics.js';
import { DatabaseUnavailable, type Db } from '../store/db.js';
import { authenticate } from './auth.js';
import { HeraldError } from './errors.js';
import { deliveryRoutes } from './routes/deliveries.js';
import { healthRoutes } from './routes/health.js';
import { inboxRoutes } from './routes/inbox.js';
import { notificationRoutes } from './routes/notifications.js';
import { templateRoutes } from './routes/templates.js';

export interface ApiDeps {
  db: Db;
  engine: Engine;
  queries: DeliveryQueries;
  templates: TemplateStore;
  inbox: InboxStore;
  inboxLive: InboxLive;
  metrics: Metrics;
  /** Undefined when auth.enabled is false. */
  credentials?: Credentials;
}

declare module 'fastify' {
  interface FastifyRequest {
    appId: string;
  }
}

/** Turns a schema violation into the field path a client wrote: `channels.email.template`. */
function fieldOf(error: FastifyError): string | undefined {
  const first = error.validation?.[0];
  if (!first) return undefined;
  const path = first.instancePath.replace(/^\//, '').split('/').filter(Boolean);
  const missing = (first.params as { missingProperty?: string }).missingProperty;
  if (missing) path.push(missing);
  const field = path.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
  return field || error.validationContext;
}

export function buildApi(config: Config, deps: ApiDeps, log: Logger): FastifyInstance {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // One log line per request costs more than the request at thousands per second; errors are logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.server.bodyLimit,
    connectionTimeout: config.server.readTimeoutMs,
    keepAliveTimeout: config.server.idleTimeoutMs,
    requestTimeout: config.server.writeTimeoutMs,
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });
  app.decorateRequest('appId', '');

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof HeraldError) return reply.status(error.status).send(error.toJSON());
    if (error.validation) {
      const field = fieldOf(error);
      const first = error.validation[0];
      const problem = first?.keyword === 'required' ? 'is required' : (first?.message ?? 'is invalid');
      const message = `${field ?? 'request'} ${problem}`;
      return reply.status(400).send({ error: 'validation_failed', message, ...(field ? { field } : {}) });
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.status(413).send({ error: 'payload_too_large', message: `body is larger than ${config.server.bodyLimit} bytes` });
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.status(415).send({ error: 'unsupported_media_type', message: 'send application/json' });
    }
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.status(error.statusCode).send({ error: 'validation_failed', message: error.message });
    }
    request.log.error({ err: error, url: request.url }, 'request failed');
    if (error instanceof DatabaseUnavailable) {
      return reply.status(503).send({ error: 'unavailable', message: 'the database is unavailable; try again' });
    }
    return reply.status(500).send({ error: 'internal', message: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  app.register(healthRoutes(deps));
  app.register(
    async (v1) => {
      if (deps.credentials) v1.addHook('onRequest', authenticate(deps.credentials));
      else v1.addHook('onRequest', async (request) => void (request.appId = 'default'));
      v1.register(notificationRoutes(deps));
      v1.register(deliveryRoutes(deps));
      v1.register(templateRoutes(deps));
      v1.register(inboxRoutes(deps));
    },
    { prefix: '/api/v1' },
  );
  return app;
}
