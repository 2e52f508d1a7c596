import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

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

export interface ScriptedReply {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

const reject = (status: number, error: string): ScriptedReply => ({ status, body: JSON.stringify({ code: status, error }) });

export class FakeSmsGateway {
  readonly requests: GatewayRequest[] = [];
  private readonly scripts = new Map<string, ScriptedReply[]>();
  private nextId = 1;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly apiKey: string,
  ) {}

  static async start(apiKey: string): Promise<FakeSmsGateway> {
    let fake: FakeSmsGateway | undefined;
    const server = createServer((req, res) => {
      void fake!.handle(req).then((reply) =>
        res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers }).end(reply.body),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fake = new FakeSmsGateway(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, apiKey);
    return fake;
  }

  /** Answers the next messages to `phone` with these replies, in order. */
  script(phone: string, ...replies: ScriptedReply[]): void {
    this.scripts.set(phone, replies);
  }

  to(phone: string): GatewayRequest[] {
    return this.requests.filter((r) => r.fields.to === phone);
  }

  private async handle(req: IncomingMessage): Promise<ScriptedReply> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
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

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
