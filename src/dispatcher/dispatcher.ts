import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ChannelProvider, Outcome } from '../channels/channel.js';
import type { ChannelSet } from '../channels/registry.js';
import type { Config } from '../config/load.js';
import { DELIVERY_NOTIFY_CHANNEL, type ChannelSnapshot } from '../engine/accept.js';
import type { Metrics } from '../metrics.js';
import type { Db } from '../store/db.js';
import { retryDelayMs } from './backoff.js';
import { recordCompletions, type Completion } from './completions.js';
import { ContentCache } from './content.js';
import { RateLimiter } from './rate-limit.js';
import { Router } from './routing.js';

interface Claimed {
  id: string;
  notification_id: string;
  app_id: string;
  channel: string;
  recipient_type: string;
  recipient_value: string;
  attempts: number;
  requeued_at_attempt: number;
  created_at: Date;
  fallback_step: number | null;
  last_provider: string | null;
  spec: ChannelSnapshot | null;
}

export type DispatcherSettings = Pick<Config, 'dispatcher' | 'defaults'>;

const MAX_FLUSH = 1_000;
const RECORD_RETRY_MS = 1_000;
const STOP_RECORD_TRIES = 5;
/** How long a waiting delivery sleeps before the next check when its channel names no time. */
const DEFAULT_RECHECK_MS = 60_000;

/**
 * Claims due deliveries in batches, sends each through its channel, and records the outcome.
 *
 * A claim is one statement: `FOR UPDATE SKIP LOCKED` picks due rows no other worker holds and
 * marks them `processing` with a lease; a crashed worker's rows come back when the lease passes.
 * Completions are written in batches too (one UPDATE and one INSERT per flush), so the database
 * does a handful of statements per hundred deliveries rather than several per delivery.
 */
export class Dispatcher {
  readonly workerId = `w_${randomUUID().slice(0, 8)}`;
  private inflight = 0;
  private stopping = false;
  private loop?: Promise<void>;
  private wake?: () => void;
  private notified = false;
  private unlisten?: () => Promise<void>;
  private pending: Completion[] = [];
  private flushing?: Promise<void>;
  private readonly content = new ContentCache();
  private lastReap = 0;
  private drained?: () => void;
  private readonly router: Router;

  constructor(
    private readonly db: Db,
    channels: () => ChannelSet,
    private readonly settings: () => DispatcherSettings,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.router = new Router(channels, new RateLimiter(db));
  }

  async start(): Promise<void> {
    this.unlisten = await this.db.listen(DELIVERY_NOTIFY_CHANNEL, () => this.poke());
    this.loop = this.run();
  }

  /** Wakes the loop now (a new delivery was queued). */
  poke(): void {
    this.notified = true;
    this.wake?.();
  }

  /** Stops claiming, lets in-flight sends finish and records them, then returns. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    if (this.inflight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    await this.flushing;
    await this.unlisten?.();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const { dispatcher } = this.settings();
      try {
        await this.reapExpiredLeases(dispatcher.intervalMs);
        const room = dispatcher.concurrency - this.inflight;
        const want = Math.min(dispatcher.batchSize, room);
        // Wait for room rather than claim a trickle: half a batch or more at a time.
        if (want < Math.min(dispatcher.batchSize, dispatcher.concurrency) / 2) {
          await this.sleep(dispatcher.intervalMs);
          continue;
        }
        this.notified = false;
        const rows = await this.claim(want, dispatcher.leaseTimeoutMs);
        if (this.stopping) {
          await this.putBack(rows.map((r) => ({ id: r.id, delayMs: 0 })));
          break;
        }
        const routes = await this.router.route(rows);
        await this.putBack(routes.defer);
        for (const { row, provider } of routes.send) this.start1(row, provider);
        if (rows.length < want && !this.notified) await this.sleep(dispatcher.intervalMs);
      } catch (error) {
        this.log.error({ err: error }, 'dispatcher cycle failed; retrying');
        await this.sleep(dispatcher.intervalMs);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  private claim(limit: number, leaseMs: number): Promise<Claimed[]> {
    return this.db.query<Claimed>(
      `with due as (
         select id from deliveries
         where status in ('pending', 'retry', 'waiting') and run_at <= now()
         order by run_at
         limit $1
         for update skip locked)
       update deliveries d
       set status = 'processing', locked_by = $2, locked_until = now() + $3 * interval '1 millisecond',
           attempts = d.attempts + 1, updated_at = now()
       from due, notifications n
       where d.id = due.id and n.id = d.notification_id
       returning d.id, d.notification_id, d.app_id, d.channel, d.recipient_type, d.recipient_value,
                 d.attempts, d.requeued_at_attempt, d.created_at, d.fallback_step, d.provider as last_provider,
                 n.channels -> d.channel as spec`,
      [limit, this.workerId, leaseMs],
    );
  }

  /**
   * Returns claimed rows unsent, as if never claimed, to run again after their delay: rows over a
   * rate limit or behind an open breaker, or claimed while shutting down. No retry budget is used.
   */
  private async putBack(rows: readonly { id: string; delayMs: number }[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db.query(
      `update deliveries d
       set status = case when d.attempts - 1 > d.requeued_at_attempt then 'retry' else 'pending' end,
           attempts = d.attempts - 1, run_at = now() + u.delay_ms * interval '1 millisecond',
           locked_by = null, locked_until = null, updated_at = now()
       from unnest($1::uuid[], $2::int[]) as u(id, delay_ms)
       where d.id = u.id and d.locked_by = $3`,
      [rows.map((r) => r.id), rows.map((r) => Math.round(r.delayMs)), this.workerId],
    );
  }

  /** Puts deliveries whose lease ran out (their worker died) back in the queue. */
  private async reapExpiredLeases(everyMs: number): Promise<void> {
    const now = Date.now();
    if (now - this.lastReap < everyMs) return;
    this.lastReap = now;
    // The dead worker's attempt is logged too: it counted against the retry budget.
    const rows = await this.db.query<{ n: number }>(
      `with expired as (
         update deliveries set status = 'retry', locked_by = null, locked_until = null, run_at = now(), updated_at = now()
         where status = 'processing' and locked_until < now() returning id, attempts),
       logged as (
         insert into delivery_attempts (delivery_id, attempt, provider, outcome, error, started_at, duration_ms)
         select id, attempts, null, 'retry', 'lease expired: the worker stopped before recording an outcome', now(), 0
         from expired)
       select count(*)::int as n from expired`,
    );
    if (rows[0]!.n > 0) this.log.warn({ count: rows[0]!.n }, 'requeued deliveries whose lease expired');
  }

  private start1(row: Claimed, provider: ChannelProvider | undefined): void {
    this.inflight++;
    void this.process(row, provider).then((completion) => {
      this.pending.push(completion);
      this.scheduleFlush();
    });
  }

  private async process(row: Claimed, provider: ChannelProvider | undefined): Promise<Completion> {
    const startedAt = new Date();
    const { dispatcher, defaults } = this.settings();
    let outcome: Outcome;
    if (!provider) {
      outcome = { kind: 'retry', error: `channel ${row.channel} has no enabled provider for ${row.recipient_type}` };
    } else if (!row.spec) {
      outcome = { kind: 'failed', error: `notification has no content for channel ${row.channel}` };
    } else {
      outcome = await this.send(row, row.spec, provider, dispatcher.sendTimeoutMs);
    }
    const completion: Completion = {
      id: row.id,
      status: outcome.kind,
      delayMs: null,
      error: outcome.kind === 'sent' ? null : outcome.kind === 'waiting' ? outcome.reason : outcome.error,
      provider: provider?.name ?? null,
      attempt: row.attempts,
      outcome: outcome.kind,
      details: outcome.details ?? null,
      startedAt,
      durationMs: Date.now() - startedAt.getTime(),
      fallbackStep: row.fallback_step,
    };
    if (provider) {
      if (outcome.kind === 'retry' && outcome.scope !== 'recipient') this.router.breakers.failed(provider.name);
      else if (outcome.kind === 'sent') this.router.breakers.succeeded(provider.name);
    }
    if (outcome.kind === 'waiting') completion.delayMs = outcome.recheckAfterMs ?? DEFAULT_RECHECK_MS;
    if (outcome.kind === 'retry') {
      const retries = row.attempts - row.requeued_at_attempt;
      if (retries > defaults.maxRetry) {
        completion.status = 'dead';
        completion.error = `gave up after ${retries} attempts: ${outcome.error}`;
      } else {
        completion.delayMs = retryDelayMs(retries, defaults.retryBackoffSeconds, outcome.retryAfterMs);
      }
    }
    this.metrics.deliveryOutcome(row.channel, completion.status === 'dead' ? 'dead' : outcome.kind, row.created_at);
    if (completion.status !== 'sent') {
      this.log.warn(
        { delivery: row.id, channel: row.channel, attempt: row.attempts, status: completion.status, error: completion.error },
        'delivery not sent',
      );
    }
    return completion;
  }

  private async send(
    row: Claimed,
    spec: ChannelSnapshot,
    provider: ChannelProvider,
    timeoutMs: number,
  ): Promise<Outcome> {
    let content;
    try {
      content = this.content.get(row.notification_id, row.channel, spec);
    } catch (error) {
      return { kind: 'failed', error: `template failed to render: ${(error as Error).message}` };
    }
    // The same abort AbortSignal.timeout gives, but with the timer cleared when the send ends: its
    // timer, WeakRef and finalizer otherwise live the whole timeout (30 s by default), some 90,000
    // of them at 3,000 sends/s, and were most of what grew the heap under load.
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
      timeoutMs,
    ).unref();
    const signal = controller.signal;
    try {
      return await provider.send({
        delivery: {
          id: row.id,
          notificationId: row.notification_id,
          appId: row.app_id,
          channel: row.channel,
          recipient: { type: row.recipient_type, value: row.recipient_value },
          attempt: row.attempts,
          acceptedAt: new Date(row.created_at),
        },
        content,
        signal,
      });
    } catch (error) {
      // A provider that throws instead of classifying is treated as transient: retried, then dead.
      return { kind: 'retry', error: (error as Error).message ?? String(error) };
    } finally {
      clearTimeout(timer);
    }
  }

  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      // Wait out this turn of the event loop so every answer read in it is recorded in the same
      // flush: flushing at the first one wrote batches of one on PGlite (3,500 flushes for 3,500
      // sends), whose statements block the thread while they run.
      await new Promise((resolve) => setImmediate(resolve));
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, MAX_FLUSH);
        await this.complete(batch);
        this.inflight -= batch.length;
        if (this.inflight === 0) this.drained?.();
        this.wake?.();
      }
      this.flushing = undefined;
    })();
  }

  /**
   * Records a batch of outcomes, trying again every second until the database takes it: the sends
   * happened, and their outcome must not be lost. A process that is stopping gives up after
   * STOP_RECORD_TRIES; the lease then returns those rows and they are sent again (at least once).
   */
  private async complete(batch: Completion[]): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        await recordCompletions(this.db, this.workerId, batch);
        return;
      } catch (error) {
        this.log.error({ err: error, count: batch.length }, 'recording delivery outcomes failed; retrying');
        if (this.stopping && tries >= STOP_RECORD_TRIES) return;
        await new Promise((r) => setTimeout(r, RECORD_RETRY_MS));
      }
    }
  }
}
