import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from './store/db.js';

export type DeliveryOutcome = 'sent' | 'retry' | 'waiting' | 'failed' | 'dead';

/** Herald's Prometheus metrics, in a registry of its own (one per service instance). */
export class Metrics {
  readonly registry = new Registry();
  private readonly accepted = new Counter({
    name: 'herald_notifications_accepted_total',
    help: 'Notifications accepted by the API (idempotent repeats not counted)',
    registers: [this.registry],
  });
  private readonly outcomes = new Counter({
    name: 'herald_delivery_attempts_total',
    help: 'Delivery attempts by channel and outcome (sent, retry, waiting, failed, dead)',
    labelNames: ['channel', 'outcome'],
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'herald_delivery_latency_seconds',
    help: 'Time from accepting a notification to its delivery being sent, by channel',
    labelNames: ['channel'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [this.registry],
  });

  constructor(db: Db) {
    new Gauge({
      name: 'herald_queue_depth',
      help: 'Deliveries waiting or in flight, by status',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        const rows = await db.query<{ status: string; n: number }>(
          `select status, count(*)::int as n from deliveries
           where status in ('pending', 'retry', 'waiting', 'processing') group by status`,
        );
        this.reset();
        for (const status of ['pending', 'retry', 'waiting', 'processing']) {
          this.set({ status }, rows.find((r) => r.status === status)?.n ?? 0);
        }
      },
    });
  }

  notificationsAccepted(n: number): void {
    this.accepted.inc(n);
  }

  deliveryOutcome(channel: string, outcome: DeliveryOutcome, acceptedAt?: Date): void {
    this.outcomes.inc({ channel, outcome });
    if (outcome === 'sent' && acceptedAt) this.latency.observe({ channel }, (Date.now() - acceptedAt.getTime()) / 1000);
  }
}
