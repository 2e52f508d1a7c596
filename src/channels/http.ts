import { Agent, request, errors as undiciErrors, type Dispatcher, type FormData } from 'undici';
import type { Outcome } from './channel.js';

/** Longest wait a provider's Retry-After may impose before Herald tries again anyway. */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;
const MAX_DETAIL_CHARS = 512;
// A webhook URL is whatever an app sent; an endpoint answering with a huge page must not make
// Herald buffer it (200 sends in flight × 1 MiB is the worst case kept in memory).
const MAX_RESPONSE_BYTES = 1024 * 1024;

// RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient must accept.
const IMF_FIXDATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850_DATE = /^[A-Z][a-z]{5,8}, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

function parseHttpDate(text: string): number {
  if (IMF_FIXDATE.test(text) || RFC850_DATE.test(text)) return Date.parse(text);
  // asctime carries no zone but is GMT; Date.parse would read it as local time.
  if (ASCTIME_DATE.test(text)) return Date.parse(`${text} GMT`);
  return Number.NaN;
}

/**
 * Parses Retry-After: delta-seconds or an HTTP-date, as milliseconds from `now`. A date in the past
 * is 0; anything longer than an hour is an hour; undefined when absent or not one of those forms
 * (a lenient date parser would read garbage such as "1 2" as a past date, i.e. "retry now").
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const raw = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!raw) return undefined;
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(raw)) ms = Number(raw) * 1000;
  else {
    const at = parseHttpDate(raw);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** At most MAX_RESPONSE_BYTES of the body, as UTF-8. */
  body: string;
}

/** An answer with its body as bytes, for callers that read binary or larger bodies. */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface HttpRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH';
  headers?: Record<string, string>;
  body?: string | Uint8Array | FormData;
  signal: AbortSignal;
}

/** A keep-alive connection pool per provider, so sends reuse connections. */
export function makeAgent(timeoutMs: number): Agent {
  return new Agent({
    keepAliveTimeout: 30_000,
    connections: 128,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: { timeout: timeoutMs },
  });
}

/**
 * One HTTP exchange through `dispatcher`, reading at most `maxBytes + 1` bytes of the answer so a
 * caller can tell an over-long body; redirects are not followed unless the dispatcher does. Network
 * errors and timeouts come back as a retry outcome, never a throw, because a provider that cannot be
 * reached is a transient condition.
 */
export async function exchange(
  dispatcher: Dispatcher,
  url: string,
  init: HttpRequest,
  maxBytes = MAX_RESPONSE_BYTES,
): Promise<RawResponse | Extract<Outcome, { kind: 'retry' }>> {
  try {
    const res = await request(url, {
      method: init.method ?? 'POST',
      headers: init.headers,
      body: init.body,
      signal: init.signal,
      dispatcher,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    // Leaving the loop early destroys the stream, which drops that connection instead of draining it.
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size > maxBytes) break;
    }
    return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).subarray(0, maxBytes + 1) };
  } catch (error) {
    return { kind: 'retry', error: describeNetworkError(error) };
  }
}

/** One request whose answer is text (at most MAX_RESPONSE_BYTES of it), as most providers give. */
export async function sendHttp(agent: Dispatcher, url: string, init: HttpRequest): Promise<HttpResponse | Outcome> {
  const res = await exchange(agent, url, init);
  if ('kind' in res) return res;
  return { ...res, body: res.body.subarray(0, MAX_RESPONSE_BYTES).toString('utf8') };
}

export function isOutcome<T extends object>(value: T | Outcome): value is Outcome {
  return 'kind' in value;
}

export function describeNetworkError(error: unknown): string {
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError) {
    return 'timeout waiting for the provider';
  }
  // The dispatcher's send timeout aborts with a DOMException named TimeoutError (code 23, not an errno).
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return 'send timed out';
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' ? `${code}: ${message}` : message;
}

/** The provider's answer, kept short, for the attempts log. */
export function responseDetails(res: HttpResponse): Record<string, unknown> {
  return { status: res.status, body: res.body.slice(0, MAX_DETAIL_CHARS) };
}
