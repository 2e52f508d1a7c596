import type { IncomingMessage } from 'node:http';
import { FakeHttpService, type FakeReply } from '../helpers/fake-http.js';

/**
 * A generic HTTP SMS gateway on 127.0.0.1 with three front doors, each checking its request the
 * way such gateways do: an API key header, a body that parses in its declared Content-Type, and
 * the recipient and text fields present.
 *   POST /v1/sms    JSON {to, text, …}, `Authorization: Bearer <key>`
 *   POST /form/send form to=…&msg=…, `X-Api-Key: <key>`
 *   GET  /get/send  query ?to=…&msg=…, `X-Api-Key: <key>`
 * Numbers can be scripted to answer anything else (throttling, errors).
 */

export interface GatewayRequest {
  path: string;
  method: string;
  headers: IncomingMessage['headers'];
  /** The parsed fields: JSON object, form or query. */
  fields: Record<string, unknown>;
  status: number;
  at: number;
}

const reject = (status: number, error: string): FakeReply => ({ status, body: JSON.stringify({ code: status, error }) });

export class FakeSmsGateway extends FakeHttpService {
  readonly requests: GatewayRequest[] = [];
  private readonly scripts = new Map<string, FakeReply[]>();
  private nextId = 1;

  private constructor(private readonly apiKey: string) {
    super({ 'content-type': 'application/json' });
  }

  static start(apiKey: string): Promise<FakeSmsGateway> {
    return new FakeSmsGateway(apiKey).listen();
  }

  /** Answers the next messages to `phone` with these replies, in order. */
  script(phone: string, ...replies: FakeReply[]): void {
    this.scripts.set(phone, replies);
  }

  to(phone: string): GatewayRequest[] {
    return this.requests.filter((r) => r.fields.to === phone);
  }

  protected handle(req: IncomingMessage, body: Buffer): FakeReply {
    const raw = body.toString('utf8');
    const url = new URL(req.url ?? '/', this.url);
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    let fields: Record<string, unknown>;
    let text: unknown;
    if (req.method === 'POST' && url.pathname === '/v1/sms') {
      if (req.headers.authorization !== `Bearer ${this.apiKey}`) return reject(401, 'invalid api key');
      if (type !== 'application/json') return reject(415, 'JSON only');
      try {
        fields = JSON.parse(raw) as Record<string, unknown>;
      } catch (error) {
        return reject(400, `malformed JSON: ${(error as Error).message}`);
      }
      text = fields.text;
    } else if ((req.method === 'POST' && url.pathname === '/form/send') || (req.method === 'GET' && url.pathname === '/get/send')) {
      if (req.headers['x-api-key'] !== this.apiKey) return reject(401, 'invalid api key');
      if (req.method === 'POST' && type !== 'application/x-www-form-urlencoded') return reject(415, 'form only');
      fields = Object.fromEntries(req.method === 'POST' ? new URLSearchParams(raw) : url.searchParams);
      text = fields.msg;
    } else {
      return reject(404, 'no such endpoint');
    }
    if (typeof fields.to !== 'string' || !/^\+?\d{5,20}$/.test(fields.to)) return reject(400, 'invalid to');
    if (typeof text !== 'string' || text === '') return reject(400, 'empty text');
    const reply = this.scripts.get(fields.to)?.shift() ?? {
      status: 200,
      body: JSON.stringify({ code: 0, messageId: `msg-${this.nextId++}` }),
    };
    this.requests.push({ path: url.pathname, method: req.method, headers: req.headers, fields, status: reply.status, at: Date.now() });
    return reply;
  }
}
