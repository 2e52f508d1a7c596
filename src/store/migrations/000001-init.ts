/** Notifications, the delivery queue, its attempts log, templates and the in-app inbox. */
export default `
create table notifications (
  id uuid primary key,
  app_id text not null,
  idempotency_key text,
  request_hash text not null,
  -- channel name -> {template, params, content}: the template is copied at accept time, so a
  -- later edit changes no queued message and the dispatcher reads no template table.
  channels jsonb not null,
  recipients jsonb not null,
  created_at timestamptz not null default now(),
  unique (app_id, idempotency_key)
);

create table deliveries (
  id uuid primary key,
  notification_id uuid not null references notifications (id) on delete cascade,
  app_id text not null,
  channel text not null,
  recipient_type text not null,
  recipient_value text not null,
  -- held: a later step of a fallback chain, released when the earlier step fails for this person,
  -- skipped: a held step no longer needed because an earlier one was sent.
  status text not null default 'pending'
    check (status in ('pending', 'processing', 'retry', 'waiting', 'held', 'sent', 'failed', 'dead', 'skipped')),
  attempts integer not null default 0,
  -- attempts already made when the delivery was last re-queued by hand; maxRetry counts from here
  requeued_at_attempt integer not null default 0,
  run_at timestamptz not null default now(),
  locked_by text,
  locked_until timestamptz,
  last_error text,
  provider text,
  -- fallback chains: whose addresses these are, and the step of the chain this delivery is
  person text,
  fallback_step integer,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  sent_at timestamptz
);
-- The claim reads only due rows; the partial index keeps it cheap however many rows are done.
create index deliveries_due on deliveries (run_at) where status in ('pending', 'retry', 'waiting');
create index deliveries_lease on deliveries (locked_until) where status = 'processing';
create index deliveries_notification on deliveries (notification_id);
create index deliveries_app_status on deliveries (app_id, status, updated_at);

create table delivery_attempts (
  id bigserial primary key,
  delivery_id uuid not null references deliveries (id) on delete cascade,
  attempt integer not null,
  provider text,
  outcome text not null check (outcome in ('sent', 'retry', 'waiting', 'failed', 'dead')),
  error text,
  details jsonb,
  started_at timestamptz not null,
  duration_ms integer not null
);
create index delivery_attempts_delivery on delivery_attempts (delivery_id, attempt);

create table templates (
  app_id text not null,
  name text not null,
  channel text not null,
  description text not null default '',
  subject text not null default '',
  body text not null default '',
  msg_type text not null default '',
  template_code text not null default '',
  engine text not null check (engine in ('go', 'liquid')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (app_id, name)
);

create table inbox_messages (
  id bigserial primary key,
  app_id text not null,
  user_id text not null,
  notification_id uuid not null,
  delivery_id uuid not null unique,
  subject text not null,
  body text not null,
  created_at timestamptz not null default now(),
  seen_at timestamptz
);
create index inbox_messages_user on inbox_messages (app_id, user_id, id desc);
create index inbox_messages_unseen on inbox_messages (app_id, user_id) where seen_at is null;

-- Provider send-rate token buckets shared by every replica (see dispatcher/rate-limit.ts).
create table rate_buckets (
  key text primary key,
  tokens double precision not null,
  refilled_at timestamptz not null
);
`;
