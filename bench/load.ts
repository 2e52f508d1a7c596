/**
 * The load generator: POST /api/v1/notifications over a fixed set of keep-alive connections
 * (undici Pool), either as fast as the server answers or open-loop at a fixed rate. Each request
 * names one webhook recipient whose URL ends in the request's sequence number, so the receiver can
 * tell which request a webhook came from.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { now } from './clock.js';

export interface App {
  appId: string;
  appSecret: string;
}

export interface Sent {
  /** When each request was sent and answered, by sequence number (ms, monotonic clock). */
  sentAt: Float64Array;
  repliedAt: Float64Array;
  errors: number;
  /** The first error reply, to show what went wrong. */
  firstError?: string;
}

export class HeraldClient {
  private readonly pool: Pool;
  private readonly headers: Record<string, string>;

  constructor(url: string, app: App, connections: number) {
    this.pool = new Pool(url, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
    this.headers = { 'content-type': 'application/json', 'x-app-id': app.appId, 'x-app-secret': app.appSecret };
  }

  async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; text: string }> {
    const res = await this.pool.request({
      method,
      path,
      headers: this.headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.statusCode, text: await res.body.text() };
  }

  /** One notification to `${hookBase}/${seq}`, recorded into `into`. */
  private async notify(hookBase: string, seq: number, into: Sent): Promise<void> {
    const body = {
      channels: { webhook: { template: 'bench', params: { n: seq, who: 'reader' } } },
      recipients: [{ type: 'webhook', value: `${hookBase}/${seq}` }],
    };
    into.sentAt[seq] = now();
    try {
      const res = await this.call('POST', '/api/v1/notifications', body);
      if (res.status !== 200) {
        into.errors++;
        into.firstError ??= `HTTP ${res.status}: ${res.text.slice(0, 200)}`;
      }
    } catch (error) {
      into.errors++;
      into.firstError ??= String(error);
    }
    into.repliedAt[seq] = now();
  }

  /** Sends `count` notifications from `concurrency` loops, each sending its next as soon as one is answered. */
  async maxRate(hookBase: string, count: number, concurrency: number): Promise<Sent> {
    const sent: Sent = { sentAt: new Float64Array(count), repliedAt: new Float64Array(count), errors: 0 };
    let next = 0;
    const loop = async () => {
      while (next < count) await this.notify(hookBase, next++, sent);
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    return sent;
  }

  /**
   * Sends `rate` notifications a second for `seconds`, on schedule whether or not earlier ones
   * were answered (open loop), so a slow reply delays no later request.
   */
  async fixedRate(hookBase: string, rate: number, seconds: number): Promise<Sent> {
    const count = Math.round(rate * seconds);
    const sent: Sent = { sentAt: new Float64Array(count), repliedAt: new Float64Array(count), errors: 0 };
    const inflight: Promise<void>[] = [];
    const start = now();
    let next = 0;
    while (next < count) {
      const due = Math.min(count, Math.floor(((now() - start) * rate) / 1000) + 1);
      while (next < due) inflight.push(this.notify(hookBase, next++, sent));
      await sleep(1);
    }
    await Promise.all(inflight);
    return sent;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
