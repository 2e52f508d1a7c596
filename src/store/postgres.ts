import pg from 'pg';
import { DatabaseUnavailable, SESSION_SETTINGS, type Db, type Queryable } from './db.js';

// int8 (counts, sums) as JS numbers, as the embedded store returns them.
pg.types.setTypeParser(20, (value) => Number(value));

const LISTEN_RECONNECT_MS = 1_000;

/**
 * Statements with parameters go out as prepared statements named by their text: each connection
 * parses and plans one once, then only binds and runs it. At the batch sizes of a moderate load,
 * planning Herald's unnest joins costs the server more than running them; measured on this kind
 * of machine (2 cores, PostgreSQL 15), server CPU per run of the accept insert 433 us unnamed and
 * 207 us prepared, of the template lookup 157 and 40 us. PostgreSQL plans a prepared statement with
 * its parameters for the first five runs and keeps a generic plan afterwards only if that is no
 * costlier; the queue's claim and flush turn sorts and sequential scans off, so neither kind of
 * plan can walk the whole queue (see dispatcher.ts). Texts beyond MAX_PREPARED run unnamed, so SQL
 * built at run time cannot grow each connection's statement cache without bound.
 */
const MAX_PREPARED = 200;
const preparedNames = new Map<string, string | undefined>();

function statement(sql: string, params?: readonly unknown[]): pg.QueryConfig {
  const values = params as unknown[] | undefined;
  if (!values?.length) return { text: sql, values };
  if (!preparedNames.has(sql)) {
    preparedNames.set(sql, preparedNames.size < MAX_PREPARED ? `herald_${preparedNames.size + 1}` : undefined);
  }
  return { name: preparedNames.get(sql), text: sql, values };
}

/** SQLSTATE class 08 (connection exception), 57P01–57P03 (shutting down), or the socket itself. */
function connectionLost(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^08|^57P0[1-3]$|^E(CONN|PIPE|TIMEDOUT|HOSTUNREACH)/.test(code)) return true;
  return error instanceof Error && /Connection terminated/.test(error.message);
}

/** A real PostgreSQL server through a node-postgres pool. */
export async function openPostgres(url: string, maxConnections: number): Promise<Db> {
  const options = Object.entries(SESSION_SETTINGS).map(([name, value]) => `-c ${name}=${value}`).join(' ');
  const pool = new pg.Pool({ connectionString: url, max: maxConnections, application_name: 'herald', options });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it on next use.
  });
  await pool.query('select 1');
  const listeners = new Set<pg.Client>();

  /** A pooled connection; failing to get one is the database being unavailable. */
  const connect = async (): Promise<pg.PoolClient> => {
    try {
      return await pool.connect();
    } catch (error) {
      throw new DatabaseUnavailable(error);
    }
  };
  /** Runs `fn` on one connection; a connection that was lost is dropped from the pool, not reused. */
  const withClient = async <T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await connect();
    try {
      const result = await fn(client);
      client.release();
      return result;
    } catch (error) {
      const lost = connectionLost(error);
      client.release(lost ? (error as Error) : undefined);
      throw lost ? new DatabaseUnavailable(error) : error;
    }
  };

  return {
    kind: 'postgres',
    query: <T>(sql: string, params?: readonly unknown[]) =>
      withClient(async (client) => (await client.query(statement(sql, params))).rows as T[]),
    transaction: (fn) =>
      withClient(async (client) => {
        await client.query('begin');
        try {
          const tx: Queryable = {
            async query<T>(sql: string, params?: readonly unknown[]) {
              return (await client.query(statement(sql, params))).rows as T[];
            },
          };
          const result = await fn(tx);
          await client.query('commit');
          return result;
        } catch (error) {
          await client.query('rollback').catch(() => undefined);
          throw error;
        }
      }),
    async listen(channel, onPayload) {
      let client: pg.Client | undefined;
      let stopped = false;
      const open = async (): Promise<void> => {
        const c = new pg.Client({ connectionString: url, application_name: 'herald-listen' });
        c.on('notification', (msg) => {
          if (msg.channel === channel) onPayload(msg.payload ?? '');
        });
        c.on('error', () => {
          listeners.delete(c);
          c.end().catch(() => undefined);
          reconnect();
        });
        await c.connect();
        await c.query(`listen "${channel.replaceAll('"', '""')}"`);
        client = c;
        listeners.add(c);
      };
      // Until it is back, the dispatcher's polling stands in for the wake-ups.
      const reconnect = (): void => {
        if (stopped) return;
        setTimeout(() => void open().catch(reconnect), LISTEN_RECONNECT_MS).unref();
      };
      await open();
      return async () => {
        stopped = true;
        if (client) {
          listeners.delete(client);
          await client.end().catch(() => undefined);
        }
      };
    },
    async close() {
      await Promise.all([...listeners].map((c) => c.end().catch(() => undefined)));
      await pool.end();
    },
  };
}
