import type { DeliveryOutcome } from '../metrics.js';
import type { Db, Queryable } from '../store/db.js';

export interface Completion {
  id: string;
  status: 'sent' | 'retry' | 'waiting' | 'failed' | 'dead';
  /** When to run again (retry, waiting); null leaves run_at as it is. */
  delayMs: number | null;
  error: string | null;
  provider: string | null;
  attempt: number;
  outcome: DeliveryOutcome;
  details: Record<string, unknown> | null;
  startedAt: Date;
  durationMs: number;
  /** Set when the delivery is a step of a fallback chain. */
  fallbackStep: number | null;
}

/**
 * Records a batch of outcomes in one statement whatever its size: the delivery rows and their
 * attempts (rows whose lease this worker lost are left to their new owner; their attempts are still
 * logged, since they happened). A batch holding steps of fallback chains also moves the chains in
 * the same transaction: the next step released when a step failed for a person, the later steps
 * skipped when one was sent.
 */
export async function recordCompletions(db: Db, workerId: string, batch: readonly Completion[]): Promise<void> {
  const chained = batch.filter((c) => c.fallbackStep !== null);
  if (chained.length === 0) return void (await recordOutcomes(db, workerId, batch));
  await db.transaction(async (tx) => {
    await recordOutcomes(tx, workerId, batch);
    await moveFallbackChains(tx, chained);
  });
}

function recordOutcomes(q: Queryable, workerId: string, batch: readonly Completion[]): Promise<unknown> {
  return q.query(
    `with updated as (
       update deliveries d
       set status = u.status,
           run_at = case when u.delay_ms is null then d.run_at else now() + u.delay_ms * interval '1 millisecond' end,
           last_error = u.error, provider = u.provider,
           -- waiting is no failure: the retry budget starts again after it
           requeued_at_attempt = case when u.status = 'waiting' then d.attempts else d.requeued_at_attempt end,
           sent_at = case when u.status = 'sent' then now() else d.sent_at end,
           locked_by = null, locked_until = null, updated_at = now()
       from unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[]) as u(id, status, delay_ms, error, provider)
       where d.id = u.id and d.locked_by = $6)
     insert into delivery_attempts (delivery_id, attempt, provider, outcome, error, details, started_at, duration_ms)
     select * from unnest($1::uuid[], $7::int[], $5::text[], $8::text[], $4::text[], $9::jsonb[], $10::timestamptz[], $11::int[])`,
    [
      batch.map((c) => c.id),
      batch.map((c) => c.status),
      batch.map((c) => c.delayMs),
      batch.map((c) => c.error),
      batch.map((c) => c.provider),
      workerId,
      batch.map((c) => c.attempt),
      batch.map((c) => c.outcome),
      batch.map((c) => (c.details ? JSON.stringify(c.details) : null)),
      batch.map((c) => c.startedAt.toISOString()),
      batch.map((c) => c.durationMs),
    ],
  );
}

async function moveFallbackChains(tx: Queryable, chained: readonly Completion[]): Promise<void> {
  const sent = chained.filter((c) => c.status === 'sent').map((c) => c.id);
  const gaveUp = chained.filter((c) => c.status === 'failed' || c.status === 'dead').map((c) => c.id);
  if (sent.length > 0) {
    await tx.query(
      `update deliveries h set status = 'skipped', updated_at = now()
       from deliveries f
       where f.id = any($1::uuid[]) and h.notification_id = f.notification_id and h.person = f.person
         and h.fallback_step > f.fallback_step and h.status = 'held'`,
      [sent],
    );
  }
  if (gaveUp.length > 0) {
    // The next step goes only when every delivery of this step for the person has failed.
    const released = await tx.query<{ id: string }>(
      `update deliveries h set status = 'pending', run_at = now(), updated_at = now()
       from deliveries f
       where f.id = any($1::uuid[]) and h.notification_id = f.notification_id and h.person = f.person
         and h.fallback_step = f.fallback_step + 1 and h.status = 'held'
         and not exists (
           select 1 from deliveries o
           where o.notification_id = f.notification_id and o.person = f.person
             and o.fallback_step = f.fallback_step and o.status not in ('failed', 'dead'))
       returning h.id`,
      [gaveUp],
    );
    if (released.length > 0) await tx.query("select pg_notify('herald_deliveries', '')");
  }
}
