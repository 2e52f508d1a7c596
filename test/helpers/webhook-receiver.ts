import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A webhook endpoint on 127.0.0.1 that checks every request the way a Standard Webhooks consumer
 * does, with its own verifier (none of Herald's code), records what arrived, and answers as told.
 */

/** The consumer's tolerance for `webhook-timestamp`, either way: 5 minutes. */
export const TIMESTAMP_TOLERANCE_MS = 5 * 60 * 1000;

/** One scripted answer: status 200 and no body unless given; `delayMs: Infinity` never answers. */
export interface WebhookReply {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  delayMs?: number;
}

export interface ReceivedWebhook {
  path: string;
  headers: IncomingHttpHeaders;
  /** The exact body bytes, as UTF-8. */
  rawBody: string;
  /** The parsed JSON body; undefined when it was not JSON. */
  body: unknown;
  /** Date.now() when the body had arrived. */
  receivedAt: number;
  /** Why the request was refused (400/401), or undefined when it verified. */
  rejected?: string;
}

export interface WebhookReceiver {
  /** Base URL, e.g. http://127.0.0.1:41234; append a path per test. */
  readonly url: string;
  /** Every request, verified or not, in arrival order. */
  readonly requests: readonly ReceivedWebhook[];
  /** Answers verified requests at `path` with these replies in turn, the last one repeating. Default: 200. */
  reply(path: string, ...replies: WebhookReply[]): void;
  /** Requests that arrived at `path`. */
  at(path: string): ReceivedWebhook[];
  close(): Promise<void>;
}

const DEFAULT_REPLY: WebhookReply = {};

/**
 * Standard Webhooks verification: HMAC-SHA256 with the key behind `whsec_` over
 * `id.timestamp.body`, compared in constant time against every `v1,` entry of the signature header,
 * with the timestamp within ±5 minutes of `nowMs`. Returns why it fails, or undefined when it verifies.
 */
export function verifyWebhook(
  secret: string,
  headers: { id?: string; timestamp?: string; signature?: string },
  body: string,
  nowMs = Date.now(),
): string | undefined {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature) return 'missing webhook-id, webhook-timestamp or webhook-signature';
  if (!/^\d+$/.test(timestamp)) return 'webhook-timestamp is not integer seconds';
  if (Math.abs(nowMs - Number(timestamp) * 1000) > TIMESTAMP_TOLERANCE_MS) return 'webhook-timestamp outside tolerance';
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  const matches = signature.split(' ').some((entry) => {
    const [version, sig] = entry.split(',', 2);
    if (version !== 'v1' || !sig) return false;
    const given = Buffer.from(sig, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return matches ? undefined : 'no v1 signature matches';
}

/** What a consumer refuses: 405/400 for a request that is not a JSON POST, 401 when it does not verify. */
function checkRequest(
  secret: string,
  method: string | undefined,
  headers: IncomingHttpHeaders,
  rawBody: string,
  body: unknown,
): { status: number; reason: string } | undefined {
  if (method !== 'POST') return { status: 405, reason: `method ${method}` };
  if (!headers['content-type']?.startsWith('application/json')) return { status: 400, reason: 'content-type is not JSON' };
  if (body === undefined) return { status: 400, reason: 'body is not JSON' };
  const one = (name: string) => {
    const value = headers[name];
    return typeof value === 'string' ? value : undefined;
  };
  const reason = verifyWebhook(
    secret,
    { id: one('webhook-id'), timestamp: one('webhook-timestamp'), signature: one('webhook-signature') },
    rawBody,
  );
  return reason ? { status: 401, reason } : undefined;
}

/** Starts a receiver that verifies with `secret` (a `whsec_…` string). */
export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  const requests: ReceivedWebhook[] = [];
  const scripts = new Map<string, WebhookReply[]>();
  const timers = new Set<NodeJS.Timeout>();

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const path = (req.url ?? '/').split('?')[0]!;
      let body: unknown;
      try {
        body = JSON.parse(rawBody);
      } catch {
        body = undefined;
      }
      const refusal = checkRequest(secret, req.method, req.headers, rawBody, body);
      requests.push({ path, headers: req.headers, rawBody, body, receivedAt: Date.now(), rejected: refusal?.reason });
      if (refusal) {
        res.writeHead(refusal.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: refusal.reason }));
        return;
      }
      const script = scripts.get(path);
      const reply = (script && script.length > 1 ? script.shift() : script?.[0]) ?? DEFAULT_REPLY;
      const answer = () => {
        if (!res.destroyed) res.writeHead(reply.status ?? 200, reply.headers).end(reply.body);
      };
      if (reply.delayMs === Infinity) return;
      if (!reply.delayMs) return answer();
      const timer = setTimeout(() => {
        timers.delete(timer);
        answer();
      }, reply.delayMs);
      timers.add(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    reply(path, ...replies) {
      scripts.set(path, replies.length > 0 ? [...replies] : [DEFAULT_REPLY]);
    },
    at: (path) => requests.filter((r) => r.path === path),
    async close() {
      for (const timer of timers) clearTimeout(timer);
      // Requests held open (delayMs: Infinity) and idle keep-alive sockets would keep close() waiting.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
