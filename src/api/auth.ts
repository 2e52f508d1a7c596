import type { FastifyRequest } from 'fastify';
import type { Credentials } from '../auth/credentials.js';
import { HeraldError } from './errors.js';

/** Reads `X-App-Id` + `X-App-Secret`, or `Authorization: Bearer <appId>:<appSecret>`. */
function presented(request: FastifyRequest): { appId: string; secret: string } | undefined {
  const id = request.headers['x-app-id'];
  const secret = request.headers['x-app-secret'];
  if (typeof id === 'string' && typeof secret === 'string') return { appId: id, secret };
  const auth = request.headers.authorization;
  const match = auth && /^Bearer\s+([^:\s]+):(\S+)$/i.exec(auth);
  return match ? { appId: match[1]!, secret: match[2]! } : undefined;
}

export function authenticate(credentials: Credentials) {
  return async (request: FastifyRequest): Promise<void> => {
    const given = presented(request);
    if (!given) throw new HeraldError('unauthorized', 'send X-App-Id and X-App-Secret, or Authorization: Bearer <appId>:<appSecret>');
    if (!credentials.verify(given.appId, given.secret)) throw new HeraldError('unauthorized', 'unknown app id or wrong secret');
    request.appId = given.appId;
  };
}
