const FALLBACK_BASE_SECONDS = 30;
const MAX_DELAY_SECONDS = 24 * 60 * 60;
// ±20 % spreads retries of a burst that failed together, so they do not return together.
const JITTER = 0.2;

/**
 * Delay before retry number `retry` (1 for the first retry): the provider's Retry-After when it
 * gave one (never sooner, up to 10 % later), else the configured schedule, doubling past its end.
 */
export function retryDelayMs(
  retry: number,
  scheduleSeconds: readonly number[],
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== undefined) return Math.round(retryAfterMs * (1 + 0.1 * random()));
  const last = scheduleSeconds.at(-1) ?? FALLBACK_BASE_SECONDS;
  const base =
    retry <= scheduleSeconds.length
      ? scheduleSeconds[retry - 1]!
      : last * 2 ** (retry - Math.max(scheduleSeconds.length, 1));
  const seconds = Math.min(base, MAX_DELAY_SECONDS);
  return Math.round(seconds * 1000 * (1 - JITTER + 2 * JITTER * random()));
}
