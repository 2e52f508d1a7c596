import { HeraldError, notFound } from '../api/errors.js';
import type { Db } from '../store/db.js';
import { DELIVERY_NOTIFY_CHANNEL } from './accept.js';

/** Delivery states, mirrored by the CHECK constraint on deliveries.status. */
export const DELIVERY_STATES = Object.freeze(
  ['pending', 'processing', 'retry', 'waiting', 'held', 'sent', 'failed', 'dead', 'skipped'] as const,
);
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export interface DeliveryView {
  id: string;
  notificationId: string;
  channel: string;
  recipient: { type: string; value: string };
  status: DeliveryState;
  attempts: number;
  lastError: string | null;
  provider: string | null;
  nextAttemptAt: string | null;
  createdAt: string;
  updatedAt: string;
  sentAt: string | null;
}

export interface AttemptView {
  attempt: number;
  provider: string | null;
  outcome: string;
  error: string | null;
  details: unknown;
  startedAt: string;
  durationMs: number;
}

interface DeliveryRow {
  id: string;
  notification_id: string;
  channel: string;
  recipient_type: string;
  recipient_value: string;
  status: DeliveryState;
  attempts: number;
  last_error: string | null;
  provider: string | null;
  run_at: Date;
  created_at: Date;
  updated_at: Date;
  sent_at: Date | null;
}

const DELIVERY_COLUMNS =
  'id, notification_id, channel, recipient_type, recipient_value, status, attempts, last_error, provider, run_at, created_at, updated_at, sent_at';

const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);

function toDelivery(r: DeliveryRow): DeliveryView {
  return {
    id: r.id,
    notificationId: r.notification_id,
    channel: r.channel,
    recipient: { type: r.recipient_type, value: r.recipient_value },
    status: r.status,
    attempts: r.attempts,
    lastError: r.last_error,
    provider: r.provider,
    nextAttemptAt: r.status === 'pending' || r.status === 'retry' || r.status === 'waiting' ? iso(r.run_at) : null,
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
    sentAt: iso(r.sent_at),
  };
}

/** A notification's overall state, derived from its deliveries. */
function summarize(deliveries: DeliveryView[]): string {
  // A skipped fallback step is neither a success nor a failure of the notification.
  const states = new Set<DeliveryState>(deliveries.map((d) => d.status).filter((s) => s !== 'skipped'));
  if ((['pending', 'retry', 'waiting', 'held', 'processing'] as const).some((s) => states.has(s))) {
    return deliveries.some((d) => d.attempts > 0) ? 'processing' : 'accepted';
  }
  if (states.size === 1 && states.has('sent')) return 'sent';
  return states.has('sent') ? 'partial' : 'failed';
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Read side of notifications and deliveries, always scoped to the calling app. */
export class DeliveryQueries {
  constructor(private readonly db: Db) {}

  async notification(appId: string, id: string) {
    if (!UUID.test(id)) throw notFound(`notification ${id}`);
    const rows = await this.db.query<{
      id: string;
      app_id: string;
      idempotency_key: string | null;
      channels: Record<string, { template: string; params: unknown }>;
      recipients: unknown;
      created_at: Date;
    }>('select id, app_id, idempotency_key, channels, recipients, created_at from notifications where id = $1 and app_id = $2', [
      id,
      appId,
    ]);
    const n = rows[0];
    if (!n) throw notFound(`notification ${id}`);
    const deliveries = await this.deliveriesOf(n.id);
    return {
      id: n.id,
      senderAppId: n.app_id,
      idempotencyKey: n.idempotency_key,
      status: summarize(deliveries),
      channels: Object.fromEntries(
        Object.entries(n.channels).map(([name, c]) => [name, { template: c.template, params: c.params }]),
      ),
      recipients: n.recipients,
      createdAt: iso(n.created_at),
      deliveries,
    };
  }

  private async deliveriesOf(notificationId: string): Promise<DeliveryView[]> {
    const rows = await this.db.query<DeliveryRow>(
      `select ${DELIVERY_COLUMNS} from deliveries where notification_id = $1 order by created_at, id`,
      [notificationId],
    );
    return rows.map(toDelivery);
  }

  /** The notification's deliveries, each with its attempts. */
  async deliveriesWithAttempts(appId: string, notificationId: string) {
    const { deliveries } = await this.notification(appId, notificationId);
    const attempts = await this.db.query<{
      delivery_id: string;
      attempt: number;
      provider: string | null;
      outcome: string;
      error: string | null;
      details: unknown;
      started_at: Date;
      duration_ms: number;
    }>(
      `select delivery_id, attempt, provider, outcome, error, details, started_at, duration_ms
       from delivery_attempts where delivery_id = any($1::uuid[]) order by delivery_id, attempt, id`,
      [deliveries.map((d) => d.id)],
    );
    const byDelivery = new Map<string, AttemptView[]>();
    for (const a of attempts) {
      const list = byDelivery.get(a.delivery_id) ?? [];
      list.push({
        attempt: a.attempt,
        provider: a.provider,
        outcome: a.outcome,
        error: a.error,
        details: a.details,
        startedAt: iso(a.started_at)!,
        durationMs: a.duration_ms,
      });
      byDelivery.set(a.delivery_id, list);
    }
    return deliveries.map((d) => ({ ...d, attemptLog: byDelivery.get(d.id) ?? [] }));
  }

  /** Deliveries of this app in one state, newest change first; `before` pages on. */
  async byStatus(appId: string, opts: { status: DeliveryState; channel?: string; limit: number; before?: string }) {
    const [beforeTime, beforeId] = opts.before ? decodeCursor(opts.before) : [null, null];
    const rows = await this.db.query<DeliveryRow>(
      `select ${DELIVERY_COLUMNS} from deliveries
       where app_id = $1 and status = $2 and ($3::text is null or channel = $3)
         and ($4::timestamptz is null or (updated_at, id) < ($4::timestamptz, $5::uuid))
       order by updated_at desc, id desc limit $6`,
      [appId, opts.status, opts.channel ?? null, beforeTime, beforeId, opts.limit + 1],
    );
    const items = rows.slice(0, opts.limit).map(toDelivery);
    const last = rows.length > opts.limit ? rows[opts.limit - 1]! : undefined;
    return { items, nextCursor: last ? encodeCursor(new Date(last.updated_at).toISOString(), last.id) : null };
  }

  /** Re-queues a dead or failed delivery now, with a fresh retry budget. */
  async retry(appId: string, id: string): Promise<DeliveryView> {
    if (!UUID.test(id)) throw notFound(`delivery ${id}`);
    const rows = await this.db.transaction(async (tx) => {
      const found = await tx.query<{ status: DeliveryState }>(
        'select status from deliveries where id = $1 and app_id = $2 for update',
        [id, appId],
      );
      if (!found[0]) throw notFound(`delivery ${id}`);
      if (found[0].status !== 'dead' && found[0].status !== 'failed') {
        throw new HeraldError('conflict', `delivery ${id} is ${found[0].status}; only dead or failed deliveries can be retried`);
      }
      const updated = await tx.query<DeliveryRow>(
        `update deliveries set status = 'retry', run_at = now(), requeued_at_attempt = attempts, updated_at = now()
         where id = $1 returning ${DELIVERY_COLUMNS}`,
        [id],
      );
      await tx.query('select pg_notify($1, $2)', [DELIVERY_NOTIFY_CHANNEL, '']);
      return updated;
    });
    return toDelivery(rows[0]!);
  }
}

function encodeCursor(time: string, id: string): string {
  return Buffer.from(`${time}|${id}`).toString('base64url');
}

function decodeCursor(cursor: string): [string, string] {
  const [time, id] = Buffer.from(cursor, 'base64url').toString().split('|');
  if (!time || !id || Number.isNaN(Date.parse(time)) || !UUID.test(id)) {
    throw new HeraldError('validation_failed', 'cursor is not one this API returned', 'cursor');
  }
  return [time, id];
}
