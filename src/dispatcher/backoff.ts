import { MAX_RETRY_AFTER_MS } from '../channels/http.js';

const FALLBACK_BASE_SECONDS = 30;
const MAX_DELAY_SECONDS = 24 * 60 * 60;
// ±20 % spreads retries of a burst that failed together, so they do not return together.
const JITTER = 0.2;
// A Retry-After is a floor: wait it, plus up to 10 % so a throttled burst does not return at once.
const RETRY_AFTER_SPREAD = 0.1;

/**
 * Delay before retry number `retry` (1 for the first retry): the provider's Retry-After when it
 * gave one (never sooner, at most an hour), else the configured schedule, doubling past its end,
 * capped at a day, ±20 %.
 */
export function retryDelayMs(
  retry: number,
  scheduleSeconds: readonly number[],
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== undefined) {
    return Math.round(Math.min(retryAfterMs, MAX_RETRY_AFTER_MS) * (1 + RETRY_AFTER_SPREAD * random()));
  }
  const last = scheduleSeconds.at(-1) ?? FALLBACK_BASE_SECONDS;
  const base =
    retry <= scheduleSeconds.length
      ? scheduleSeconds[retry - 1]!
      : last * 2 ** (retry - Math.max(scheduleSeconds.length, 1));
  const seconds = Math.min(base, MAX_DELAY_SECONDS);
  return Math.round(seconds * 1000 * (1 - JITTER + 2 * JITTER * random()));
}
