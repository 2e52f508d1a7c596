import type { Db } from '../store/db.js';

/**
 * Token buckets in PostgreSQL, so a provider's send rate limit (DingTalk's 20 a minute per robot,
 * Telegram's 30 a second per bot) holds across every replica. A bucket holds at most `limit`
 * tokens and refills at `limit` per `intervalMs`; taking tokens locks its row for the instant of
 * one small transaction, once per provider per claimed batch rather than once per send.
 */
export class RateLimiter {
  constructor(private readonly db: Db) {}

  /** Takes up to `want` tokens from the bucket `key`; returns how many it got (0..want). */
  acquire(key: string, want: number, limit: number, intervalMs: number): Promise<number> {
    return this.db.transaction(async (tx) => {
      await tx.query(
        `insert into rate_buckets (key, tokens, refilled_at) values ($1, $2, clock_timestamp())
         on conflict (key) do nothing`,
        [key, limit],
      );
      const [row] = await tx.query<{ available: number }>(
        `select least($2::float8, tokens + extract(epoch from clock_timestamp() - refilled_at) * 1000 * $2 / $3)
                as available
         from rate_buckets where key = $1 for update`,
        [key, limit, intervalMs],
      );
      const granted = Math.max(0, Math.min(want, Math.floor(row!.available)));
      await tx.query('update rate_buckets set tokens = $2, refilled_at = clock_timestamp() where key = $1', [
        key,
        row!.available - granted,
      ]);
      return granted;
    });
  }
}

/** When the n-th delivery refused by a bucket (0-based) may try again: one token's refill each. */
export function rateLimitDelayMs(n: number, limit: number, intervalMs: number): number {
  return Math.ceil(((n + 1) * intervalMs) / limit);
}
