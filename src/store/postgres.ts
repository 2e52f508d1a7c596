import pg from 'pg';
import type { Db, Queryable } from './db.js';

// int8 (counts, sums) as JS numbers, as the embedded store returns them.
pg.types.setTypeParser(20, (value) => Number(value));

const LISTEN_RECONNECT_MS = 1_000;

/** A real PostgreSQL server through a node-postgres pool. */
export async function openPostgres(url: string, maxConnections: number): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url, max: maxConnections, application_name: 'herald' });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it on next use.
  });
  await pool.query('select 1');
  const listeners = new Set<pg.Client>();

  return {
    kind: 'postgres',
    async query<T>(sql: string, params?: readonly unknown[]) {
      const result = await pool.query(sql, params as unknown[] | undefined);
      return result.rows as T[];
    },
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('begin');
        const tx: Queryable = {
          async query<T>(sql: string, params?: readonly unknown[]) {
            return (await client.query(sql, params as unknown[] | undefined)).rows as T[];
          },
        };
        const result = await fn(tx);
        await client.query('commit');
        return result;
      } catch (error) {
        await client.query('rollback').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    async listen(channel, onPayload) {
      let client: pg.Client | undefined;
      let stopped = false;
      const connect = async (): Promise<void> => {
        const c = new pg.Client({ connectionString: url, application_name: 'herald-listen' });
        c.on('notification', (msg) => {
          if (msg.channel === channel) onPayload(msg.payload ?? '');
        });
        c.on('error', () => {
          listeners.delete(c);
          c.end().catch(() => undefined);
          if (!stopped) setTimeout(() => void connect().catch(() => undefined), LISTEN_RECONNECT_MS).unref();
        });
        await c.connect();
        await c.query(`listen "${channel.replaceAll('"', '""')}"`);
        client = c;
        listeners.add(c);
      };
      await connect();
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
