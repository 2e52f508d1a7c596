import { GROUP_RECIPIENT_TYPE, type ChannelProvider } from '../channels/channel.js';
import type { ChannelSet } from '../channels/registry.js';
import { Breakers } from './breaker.js';
import { rateLimitDelayMs, type RateLimiter } from './rate-limit.js';

export interface Routable {
  id: string;
  channel: string;
  recipient_type: string;
  /** The provider the previous attempt went through, if any. */
  last_provider: string | null;
}

export interface Routes<T extends Routable> {
  /** Rows to send now, each with its provider (undefined when the channel has none any more). */
  send: { row: T; provider?: ChannelProvider }[];
  /** Rows to put back unsent, each with how long to wait. */
  defer: { id: string; delayMs: number }[];
}

/**
 * Picks the provider for each claimed delivery: the first of its channel's providers that serves
 * the recipient and whose circuit breaker is closed, starting after the provider its previous
 * attempt failed on (so a retry tries the next provider at once, before any breaker opens), then
 * holds back what is over a provider's rate limit. Deliveries deferred here keep their retry budget.
 */
export class Router {
  readonly breakers = new Breakers();

  constructor(
    private readonly channels: () => ChannelSet,
    private readonly limiter: RateLimiter,
  ) {}

  async route<T extends Routable>(rows: readonly T[]): Promise<Routes<T>> {
    const set = this.channels();
    const routes: Routes<T> = { send: [], defer: [] };
    const limited = new Map<ChannelProvider, T[]>();
    for (const row of rows) {
      const serving = set
        .providersOf(row.channel)
        .filter((p) => (row.recipient_type === GROUP_RECIPIENT_TYPE ? p.postsToGroup : p.recipientTypes.includes(row.recipient_type)));
      const last = serving.findIndex((p) => p.name === row.last_provider);
      const candidates = [...serving.slice(last + 1), ...serving.slice(0, last + 1)];
      if (candidates.length === 0) {
        routes.send.push({ row });
        continue;
      }
      let provider: ChannelProvider | undefined;
      let soonest = Infinity;
      for (const p of candidates) {
        const wait = this.breakers.waitMs(p.name);
        if (wait === 0) {
          provider = p;
          break;
        }
        soonest = Math.min(soonest, wait);
      }
      if (!provider) routes.defer.push({ id: row.id, delayMs: soonest });
      else if (provider.rateLimit) limited.set(provider, [...(limited.get(provider) ?? []), row]);
      else routes.send.push({ row, provider });
    }
    for (const [provider, group] of limited) {
      const { limit, intervalMs } = provider.rateLimit!;
      const granted = await this.limiter.acquire(`provider:${provider.name}`, group.length, limit, intervalMs);
      group.forEach((row, i) => {
        if (i < granted) routes.send.push({ row, provider });
        else routes.defer.push({ id: row.id, delayMs: rateLimitDelayMs(i - granted, limit, intervalMs) });
      });
    }
    return routes;
  }
}
