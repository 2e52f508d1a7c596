/**
 * The one database interface every component uses. Two implementations: PGlite (embedded, in
 * process) and node-postgres (a real server). Both run the same SQL.
 *
 * On PostgreSQL, statements with parameters are prepared once per connection (postgres.ts); the
 * queue's claim and flush plan with sorts and sequential scans off (dispatcher.ts), so no plan made
 * on stale statistics can sort or scan the whole queue.
 */
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
