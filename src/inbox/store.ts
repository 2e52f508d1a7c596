import type { Db } from '../store/db.js';

export interface InboxMessage {
  id: string;
  userId: string;
  notificationId: string;
  subject: string;
  body: string;
  createdAt: string;
  seenAt: string | null;
}

interface Row {
  id: string;
  user_id: string;
  notification_id: string;
  subject: string;
  body: string;
  created_at: Date;
  seen_at: Date | null;
}

const COLUMNS = 'id::text as id, user_id, notification_id, subject, body, created_at, seen_at';

export const INBOX_NOTIFY_CHANNEL = 'herald_inbox';

function toMessage(row: Row): InboxMessage {
  return {
    id: row.id,
    userId: row.user_id,
    notificationId: row.notification_id,
    subject: row.subject,
    body: row.body,
    createdAt: new Date(row.created_at).toISOString(),
    seenAt: row.seen_at ? new Date(row.seen_at).toISOString() : null,
  };
}

export interface NewInboxMessage {
  appId: string;
  userId: string;
  notificationId: string;
  deliveryId: string;
  subject: string;
  body: string;
}

/** The in-app inbox: one message per (user, delivery), seen or unseen. Every read is scoped to an app. */
export class InboxStore {
  constructor(private readonly db: Db) {}

  /** Stores the message once per delivery (a retried delivery does not duplicate it) and announces it. */
  async add(m: NewInboxMessage): Promise<void> {
    await this.db.transaction(async (tx) => {
      const rows = await tx.query<{ id: string }>(
        `insert into inbox_messages (app_id, user_id, notification_id, delivery_id, subject, body)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (delivery_id) do nothing returning id::text as id`,
        [m.appId, m.userId, m.notificationId, m.deliveryId, m.subject, m.body],
      );
      if (rows[0]) {
        const payload = JSON.stringify({ appId: m.appId, userId: m.userId, id: rows[0].id });
        await tx.query('select pg_notify($1, $2)', [INBOX_NOTIFY_CHANNEL, payload]);
      }
    });
  }

  async get(appId: string, id: string): Promise<InboxMessage | undefined> {
    const rows = await this.db.query<Row>(`select ${COLUMNS} from inbox_messages where app_id = $1 and id = $2`, [
      appId,
      id,
    ]);
    return rows[0] && toMessage(rows[0]);
  }

  /** Newest first; `before` is the cursor (an id) returned by the previous page. */
  async list(
    appId: string,
    userId: string,
    opts: { unseen: boolean; limit: number; before?: string },
  ): Promise<{ items: InboxMessage[]; nextCursor: string | null }> {
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from inbox_messages
       where app_id = $1 and user_id = $2 and ($3::boolean is false or seen_at is null)
         and ($4::bigint is null or id < $4::bigint)
       order by id desc limit $5`,
      [appId, userId, opts.unseen, opts.before ?? null, opts.limit + 1],
    );
    const items = rows.slice(0, opts.limit).map(toMessage);
    const nextCursor = rows.length > opts.limit ? items[items.length - 1]!.id : null;
    return { items, nextCursor };
  }

  /** Messages after `afterId`, oldest first: what a reconnecting stream missed. */
  async since(appId: string, userId: string, afterId: string, limit: number): Promise<InboxMessage[]> {
    const rows = await this.db.query<Row>(
      `select ${COLUMNS} from inbox_messages where app_id = $1 and user_id = $2 and id > $3::bigint
       order by id limit $4`,
      [appId, userId, afterId, limit],
    );
    return rows.map(toMessage);
  }

  async countUnseen(appId: string, userId: string): Promise<number> {
    const rows = await this.db.query<{ n: number }>(
      'select count(*)::int as n from inbox_messages where app_id = $1 and user_id = $2 and seen_at is null',
      [appId, userId],
    );
    return rows[0]?.n ?? 0;
  }

  /** Marks one message seen (or unseen); returns it, or undefined when it is not this user's. */
  async setSeen(appId: string, userId: string, id: string, seen: boolean): Promise<InboxMessage | undefined> {
    const rows = await this.db.query<Row>(
      `update inbox_messages set seen_at = case when $4 then coalesce(seen_at, now()) else null end
       where app_id = $1 and user_id = $2 and id = $3 returning ${COLUMNS}`,
      [appId, userId, id, seen],
    );
    return rows[0] && toMessage(rows[0]);
  }

  async seenAll(appId: string, userId: string): Promise<number> {
    const rows = await this.db.query<{ n: number }>(
      `with changed as (
         update inbox_messages set seen_at = now()
         where app_id = $1 and user_id = $2 and seen_at is null returning 1)
       select count(*)::int as n from changed`,
      [appId, userId],
    );
    return rows[0]?.n ?? 0;
  }
}
