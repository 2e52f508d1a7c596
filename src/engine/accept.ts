import { createHash, randomUUID } from 'node:crypto';
import { HeraldError, invalid } from '../api/errors.js';
import { GROUP_RECIPIENT_TYPE, type Recipient } from '../channels/channel.js';
import type { ChannelSet } from '../channels/registry.js';
import type { Metrics } from '../metrics.js';
import type { Db, Queryable } from '../store/db.js';
import { findTemplates, templateKey, type Template } from './templates.js';

export interface ChannelRequest {
  template: string;
  params?: Record<string, unknown>;
}

export interface NotificationRequest {
  idempotencyKey?: string;
  channels: Record<string, ChannelRequest>;
  recipients: Recipient[];
}

export interface Accepted {
  notificationId: string;
  /** True when an earlier request with the same idempotency key already created it. */
  duplicate: boolean;
}

/** What a notification stores per channel: the request plus the template copied at accept time. */
export interface ChannelSnapshot extends ChannelRequest {
  content: Pick<Template, 'subject' | 'body' | 'msgType' | 'templateCode' | 'engine'>;
}

interface Planned {
  id: string;
  appId: string;
  request: NotificationRequest;
  hash: string;
  deliveries: { channel: string; recipient: Recipient }[];
  resolve: (a: Accepted) => void;
  reject: (e: unknown) => void;
}

export const DELIVERY_NOTIFY_CHANNEL = 'herald_deliveries';

// Requests arriving while a batch is being written wait for the next one. Measured: one row per
// statement from one connection ~4,500/s; batched through unnest ~140,000 rows/s.
const MAX_BATCH = 256;
const MAX_CONCURRENT_BATCHES = 4;

/** Canonical JSON (sorted keys) so the same body always hashes the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The engine's front door: checks a request against the configured channels, plans one delivery
 * per compatible (recipient, channel) pair, and writes the notification with its deliveries in one
 * transaction. Concurrent requests are written together (group commit), which is where the API's
 * throughput comes from.
 */
export class Engine {
  private queue: Planned[] = [];
  private writing = 0;

  constructor(
    private readonly db: Db,
    private readonly channels: () => ChannelSet,
    private readonly metrics: Metrics,
  ) {}

  accept(appId: string, request: NotificationRequest): Promise<Accepted> {
    const deliveries = this.plan(request);
    const { idempotencyKey: _key, ...content } = request;
    const hash = createHash('sha256').update(canonical(content)).digest('hex');
    return new Promise<Accepted>((resolve, reject) => {
      this.queue.push({ id: randomUUID(), appId, request, hash, deliveries, resolve, reject });
      this.drain();
    });
  }

  private plan(request: NotificationRequest): Planned['deliveries'] {
    const set = this.channels();
    const names = Object.keys(request.channels);
    if (names.length === 0) throw invalid('channels', 'must name at least one channel');
    const providers = names.map((name) => {
      const provider = set.get(name);
      if (!provider) throw invalid(`channels.${name}`, `is not a configured and enabled channel (configured: ${set.names().join(', ')})`);
      return { name, provider };
    });
    const seen = new Set<string>();
    const out: Planned['deliveries'] = [];
    request.recipients.forEach((recipient, i) => {
      for (const { name, provider } of providers) {
        if (!provider.recipientTypes.includes(recipient.type)) continue;
        const problem = provider.validateTarget(recipient);
        if (problem) throw invalid(`recipients[${i}].value`, `${problem} for channel ${name}`);
        const key = `${name}\0${recipient.type}\0${recipient.value}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ channel: name, recipient });
      }
    });
    // A group channel no recipient maps to still posts once, to the group itself.
    for (const { name, provider } of providers) {
      if (provider.postsToGroup && !out.some((d) => d.channel === name)) {
        out.push({ channel: name, recipient: { type: GROUP_RECIPIENT_TYPE, value: name } });
      }
    }
    if (out.length === 0) throw invalid('recipients', 'match none of the requested channels');
    return out;
  }

  private drain(): void {
    while (this.queue.length > 0 && this.writing < MAX_CONCURRENT_BATCHES) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.writing++;
      void this.write(batch).finally(() => {
        this.writing--;
        this.drain();
      });
    }
  }

  private async write(batch: Planned[]): Promise<void> {
    try {
      const outcome = await this.db.transaction((tx) => writeBatch(tx, batch));
      let accepted = 0;
      for (const [item, result] of outcome) {
        if (result instanceof Error) item.reject(result);
        else {
          if (!result.duplicate) accepted++;
          item.resolve(result);
        }
      }
      this.metrics.notificationsAccepted(accepted);
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  }
}

async function writeBatch(tx: Queryable, batch: Planned[]): Promise<Map<Planned, Accepted | Error>> {
  const results = new Map<Planned, Accepted | Error>();
  const templates = await findTemplates(
    tx,
    batch.flatMap((p) => Object.values(p.request.channels).map((c) => ({ appId: p.appId, name: c.template }))),
  );
  // Resolve templates; a request naming an unknown one is refused and writes nothing.
  const snapshots = new Map<Planned, Record<string, ChannelSnapshot>>();
  for (const p of batch) {
    try {
      const channels: Record<string, ChannelSnapshot> = {};
      for (const [name, c] of Object.entries(p.request.channels)) {
        const t = templates.get(templateKey(p.appId, c.template));
        if (!t) throw invalid(`channels.${name}.template`, `names no template ("${c.template}")`);
        if (t.channel !== name) {
          throw invalid(`channels.${name}.template`, `is a template for channel ${t.channel}, not ${name}`);
        }
        channels[name] = {
          template: c.template,
          params: c.params ?? {},
          content: { subject: t.subject, body: t.body, msgType: t.msgType, templateCode: t.templateCode, engine: t.engine },
        };
      }
      snapshots.set(p, channels);
    } catch (error) {
      results.set(p, error as Error);
    }
  }
  // Within one batch, the first request with a key writes; later ones are answered from it.
  const leaders = new Map<string, Planned>();
  const followers: Planned[] = [];
  for (const p of snapshots.keys()) {
    const key = p.request.idempotencyKey;
    if (key === undefined) continue;
    const k = `${p.appId}\0${key}`;
    if (leaders.has(k)) followers.push(p);
    else leaders.set(k, p);
  }
  const followerSet = new Set(followers);
  const toInsert = [...snapshots.keys()].filter((p) => !followerSet.has(p));
  const inserted = new Set(
    (
      await tx.query<{ id: string }>(
        `insert into notifications (id, app_id, idempotency_key, request_hash, channels, recipients)
         select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[])
         on conflict (app_id, idempotency_key) do nothing returning id`,
        [
          toInsert.map((p) => p.id),
          toInsert.map((p) => p.appId),
          toInsert.map((p) => p.request.idempotencyKey ?? null),
          toInsert.map((p) => p.hash),
          toInsert.map((p) => JSON.stringify(snapshots.get(p))),
          toInsert.map((p) => JSON.stringify(p.request.recipients)),
        ],
      )
    ).map((r) => r.id),
  );
  const fresh = toInsert.filter((p) => inserted.has(p.id));
  const repeats = [...toInsert.filter((p) => !inserted.has(p.id)), ...followers];
  if (repeats.length > 0) {
    const existing = await tx.query<{ id: string; app_id: string; idempotency_key: string; request_hash: string }>(
      `select id, app_id, idempotency_key, request_hash from notifications
       where (app_id, idempotency_key) in (select * from unnest($1::text[], $2::text[]))`,
      [repeats.map((p) => p.appId), repeats.map((p) => p.request.idempotencyKey!)],
    );
    const byKey = new Map(existing.map((r) => [`${r.app_id}\0${r.idempotency_key}`, r]));
    for (const p of repeats) {
      // A conflict means the row exists, committed by another request or inserted by this batch.
      const row = byKey.get(`${p.appId}\0${p.request.idempotencyKey}`)!;
      if (row.request_hash !== p.hash) {
        results.set(p, new HeraldError('conflict', 'idempotencyKey was already used with a different request body', 'idempotencyKey'));
      } else results.set(p, { notificationId: row.id, duplicate: true });
    }
  }
  const rows = fresh.flatMap((p) => p.deliveries.map((d) => ({ p, d })));
  if (rows.length > 0) {
    await tx.query(
      `insert into deliveries (id, notification_id, app_id, channel, recipient_type, recipient_value)
       select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])`,
      [
        rows.map(() => randomUUID()),
        rows.map((r) => r.p.id),
        rows.map((r) => r.p.appId),
        rows.map((r) => r.d.channel),
        rows.map((r) => r.d.recipient.type),
        rows.map((r) => r.d.recipient.value),
      ],
    );
    await tx.query('select pg_notify($1, $2)', [DELIVERY_NOTIFY_CHANNEL, '']);
  }
  for (const p of fresh) results.set(p, { notificationId: p.id, duplicate: false });
  return results;
}
