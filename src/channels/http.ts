import { Agent, request, errors as undiciErrors } from 'undici';
import type { Outcome } from './channel.js';

/** Longest wait a provider's Retry-After may impose before Herald tries again anyway. */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;
const MAX_DETAIL_CHARS = 512;

/** Parses Retry-After: delta-seconds or an HTTP-date. Clamped to an hour; undefined when absent or bad. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (!raw) return undefined;
  const trimmed = raw.trim();
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(trimmed)) ms = Number(trimmed) * 1000;
  else {
    const at = Date.parse(trimmed);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
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
 * Sends one HTTP request. Network errors and timeouts come back as a retry outcome, never a throw,
 * because a provider that cannot be reached is a transient condition.
 */
export async function sendHttp(
  agent: Agent,
  url: string,
  init: { method?: 'POST' | 'GET' | 'PUT'; headers: Record<string, string>; body?: string; signal: AbortSignal },
): Promise<HttpResponse | Outcome> {
  try {
    const res = await request(url, {
      method: init.method ?? 'POST',
      headers: init.headers,
      body: init.body,
      signal: init.signal,
      dispatcher: agent,
    });
    const body = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body };
  } catch (error) {
    return { kind: 'retry', error: describeNetworkError(error) };
  }
}

export function isOutcome(value: HttpResponse | Outcome): value is Outcome {
  return 'kind' in value;
}

function describeNetworkError(error: unknown): string {
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError) {
    return 'timeout waiting for the provider';
  }
  if (error instanceof Error && error.name === 'AbortError') return 'send timed out';
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  return code ? `${code}: ${message}` : message;
}

/** The provider's answer, kept short, for the attempts log. */
export function responseDetails(res: HttpResponse): Record<string, unknown> {
  return { status: res.status, body: res.body.slice(0, MAX_DETAIL_CHARS) };
}
