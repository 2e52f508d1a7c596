/**
 * A circuit breaker per provider, in each process: after `threshold` transient failures in a row
 * the provider is skipped for `cooldownMs`, then one delivery is let through to test it; a success
 * closes the breaker, a failure opens it for another cool-down.
 */
export class Breakers {
  private readonly state = new Map<string, { failures: number; openUntil: number; probing: boolean }>();

  constructor(
    private readonly threshold = 5,
    private readonly cooldownMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * 0 when a send through `provider` may be tried now (taking the half-open probe if it is due),
   * else how long until it may.
   */
  waitMs(provider: string): number {
    const s = this.state.get(provider);
    if (!s || s.failures < this.threshold) return 0;
    const wait = s.openUntil - this.now();
    if (wait > 0) return wait;
    if (s.probing) return this.cooldownMs;
    s.probing = true;
    return 0;
  }

  succeeded(provider: string): void {
    this.state.delete(provider);
  }

  failed(provider: string): void {
    const s = this.state.get(provider) ?? { failures: 0, openUntil: 0, probing: false };
    s.failures++;
    s.probing = false;
    if (s.failures >= this.threshold) s.openUntil = this.now() + this.cooldownMs;
    this.state.set(provider, s);
  }
}
