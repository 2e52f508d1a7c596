import type { Dispatcher, FormData } from 'undici';
import type { Outcome } from './channel.js';
import { exchange, parseRetryAfter, type RawResponse } from './http.js';

/**
 * Feishu OpenAPI access for an app bot: one HTTP exchange (any method, JSON or multipart body,
 * bytes back), the tenant_access_token kept fresh, and the error table that classifies answers.
 */

const TOKEN_PATH = '/open-apis/auth/v3/tenant_access_token/internal';
// Feishu's answer when a tenant_access_token is invalid or expired.
const INVALID_TOKEN = 99991663;
// Refresh a token once three quarters of its validity have passed: 30 min before the end of a
// 2 h token, which is when Feishu's token endpoint starts handing out a new one.
const TOKEN_USE_FRACTION = 0.75;

/** What an unsuccessful exchange or answer means for the delivery. */
export type Failure = Extract<Outcome, { kind: 'retry' | 'failed' | 'dead' }>;

/** A Feishu OpenAPI answer: `{"code":0,"msg":"success","data":{..}}`, with the HTTP exchange. */
export interface FeishuAnswer {
  status: number;
  headers: RawResponse['headers'];
  /** Undefined when the body was not a Feishu answer. */
  code: number | undefined;
  msg: string;
  data: Record<string, unknown>;
  /** The whole parsed body (the token endpoint answers outside `data`). Never logged: it may hold a token. */
  json: Record<string, unknown>;
}

function toAnswer(res: RawResponse): FeishuAnswer {
  let json: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(res.body.toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null) json = parsed as Record<string, unknown>;
  } catch {
    // not JSON: code stays undefined
  }
  const data = typeof json.data === 'object' && json.data !== null ? (json.data as Record<string, unknown>) : {};
  return {
    status: res.status,
    headers: res.headers,
    code: typeof json.code === 'number' ? json.code : undefined,
    msg: typeof json.msg === 'string' ? json.msg : '',
    data,
    json,
  };
}

/** What of an answer goes into the attempts log: never the body, which may carry a token. */
export function answerDetails(answer: FeishuAnswer): Record<string, unknown> {
  const logId = (answer.json.error as { log_id?: unknown } | undefined)?.log_id;
  return { status: answer.status, code: answer.code, msg: answer.msg.slice(0, 256), ...(typeof logId === 'string' ? { log_id: logId } : {}) };
}

/**
 * Codes whose meaning is not "this request is wrong" (every other non-zero code fails the message).
 * `recipient`: a limit on one user or chat, not a sign of trouble at Feishu, so the provider's
 * circuit breaker does not count it.
 */
const CODES: Readonly<Record<number, { kind: 'retry' | 'failed' | 'dead'; hint?: string; recipient?: true }>> = {
  99991400: { kind: 'retry' },
  [INVALID_TOKEN]: { kind: 'retry', hint: 'tenant_access_token refused even when fresh' },
  99991403: { kind: 'failed', hint: 'monthly API call quota used up' },
  230002: { kind: 'dead', hint: 'the bot or user is not in the chat' },
  230013: { kind: 'dead', hint: "the user is outside the app's availability range" },
  // 5 messages a second to one user or group.
  230020: { kind: 'retry', recipient: true },
};

/**
 * Classifies a Feishu OpenAPI answer; undefined means success. HTTP 429 and code 99991400 wait
 * for `x-ogw-ratelimit-reset` seconds; 5xx retries; the code table decides the rest.
 */
export function classifyFeishuAnswer(answer: FeishuAnswer): Failure | undefined {
  const details = answerDetails(answer);
  const retryAfterMs = parseRetryAfter(answer.headers['x-ogw-ratelimit-reset']) ?? parseRetryAfter(answer.headers['retry-after']);
  if (answer.status === 429 || answer.status >= 500) {
    const error = answer.code ? `HTTP ${answer.status}, code ${answer.code}: ${answer.msg}` : `HTTP ${answer.status}`;
    return { kind: 'retry', error, retryAfterMs, details };
  }
  if (answer.code === 0 && answer.status >= 200 && answer.status < 300) return undefined;
  if (answer.code === undefined) return { kind: 'failed', error: `HTTP ${answer.status}: not a Feishu API answer`, details };
  const known = CODES[answer.code];
  const error = `code ${answer.code}: ${answer.msg}${known?.hint ? ` (${known.hint})` : ''}`;
  if (known?.kind === 'retry') return { kind: 'retry', error, retryAfterMs, ...(known.recipient && { scope: 'recipient' }), details };
  return { kind: known?.kind ?? 'failed', error, details };
}

export interface FeishuApiOptions {
  dispatcher: Dispatcher;
  baseUrl: string;
  appId: string;
  appSecret: string;
  timeoutMs: number;
}

/** Calls the Feishu OpenAPI as a self-built app, with its tenant_access_token cached. */
export class FeishuApi {
  private token?: { value: string; refreshAt: number };
  private fetching?: Promise<string | Failure>;

  constructor(private readonly opts: FeishuApiOptions) {}

  /**
   * Sends one authorized request (a string body is JSON). When Feishu calls the token invalid, a
   * new token is fetched and the request sent once more.
   */
  async call(method: 'POST' | 'PATCH', path: string, body: string | FormData, signal: AbortSignal): Promise<FeishuAnswer | Failure> {
    for (let attempt = 1; ; attempt++) {
      const token = await this.tenantToken();
      if (typeof token !== 'string') return token;
      const res = await exchange(this.opts.dispatcher, `${this.opts.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(typeof body === 'string' ? { 'content-type': 'application/json; charset=utf-8' } : {}),
        },
        body,
        signal,
      });
      if ('kind' in res) return res;
      const answer = toAnswer(res);
      if (answer.code !== INVALID_TOKEN || attempt > 1) return answer;
      if (this.token?.value === token) this.token = undefined;
    }
  }

  private tenantToken(): Promise<string | Failure> {
    if (this.token && Date.now() < this.token.refreshAt) return Promise.resolve(this.token.value);
    // Concurrent sends share one token request.
    this.fetching ??= this.fetchToken().finally(() => {
      this.fetching = undefined;
    });
    return this.fetching;
  }

  private async fetchToken(): Promise<string | Failure> {
    const startedAt = Date.now();
    // Its own timeout: the token serves every send waiting on it, not only the one that asked.
    const res = await exchange(this.opts.dispatcher, `${this.opts.baseUrl}${TOKEN_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ app_id: this.opts.appId, app_secret: this.opts.appSecret }),
      signal: AbortSignal.timeout(this.opts.timeoutMs),
    });
    if ('kind' in res) return { ...res, error: `tenant_access_token: ${res.error}` };
    const answer = toAnswer(res);
    const { tenant_access_token: value, expire } = answer.json;
    if (answer.code === 0 && typeof value === 'string' && typeof expire === 'number') {
      this.token = { value, refreshAt: startedAt + expire * 1000 * TOKEN_USE_FRACTION };
      return value;
    }
    const problem: Failure = classifyFeishuAnswer(answer) ?? { kind: 'failed', error: 'no token in the answer', details: answerDetails(answer) };
    if (problem.kind === 'retry') return { ...problem, error: `tenant_access_token: ${problem.error}` };
    // Any other answer judges the app's credentials: configuration, never a recipient's address.
    return { kind: 'failed', error: `tenant_access_token: ${problem.error} (check appId and appSecret)`, details: problem.details };
  }
}
