/**
 * The one database interface every component uses. Two implementations: PGlite (embedded, in
 * process) and node-postgres (a real server). Both run the same SQL, on sessions started with
 * SESSION_SETTINGS; on PostgreSQL, statements with parameters are prepared once per connection.
 */
/**
 * Every Herald statement has an index path. Planned on statistics taken before the queue filled
 * (autovacuum analyzes a minute later at best; PGlite never does), PostgreSQL instead reads and
 * sorts every due row for each claim and scans the whole table for each completion flush: measured
 * with 20,000 queued on this kind of machine, 4-7 ms a claim instead of 1.4 ms and 2.8 ms a flush
 * instead of 1.2 ms, growing with the queue. With sorts and sequential scans priced out for the
 * whole session, only the index plans remain, at no extra round trip per statement.
 */
export const SESSION_SETTINGS = { enable_sort: 'off', enable_seqscan: 'off' } as const;

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
}

export interface Db extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Calls `onPayload` for each NOTIFY on `channel` until the returned function is called. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/**
 * The database cannot be reached (refused, lost or shutting down): what was asked changed nothing
 * and may be asked again. The API answers it with 503.
 */
export class DatabaseUnavailable extends Error {
  constructor(cause: unknown) {
    super(`database unavailable: ${(cause as Error).message ?? String(cause)}`, { cause });
    this.name = 'DatabaseUnavailable';
  }
}

export interface DatabaseOptions {
  /** postgres:// URL of a real server; when absent the embedded store is used. */
  url?: string;
  /** Folder of the embedded store; absent means in memory. */
  dataDir?: string;
  maxConnections?: number;
}

export async function openDb(options: DatabaseOptions): Promise<Db> {
  if (options.url) {
    const { openPostgres } = await import('./postgres.js');
    return openPostgres(options.url, options.maxConnections ?? 20);
  }
  const { openPglite } = await import('./pglite.js');
  return openPglite(options.dataDir);
}
