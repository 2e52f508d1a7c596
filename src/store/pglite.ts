import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { SESSION_SETTINGS, type Db, type Queryable } from './db.js';

/** The embedded store: PostgreSQL compiled to WASM, in this process. One connection, fsync off. */
export async function openPglite(dataDir?: string): Promise<Db> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const pg = await PGlite.create(dataDir);
  for (const [name, value] of Object.entries(SESSION_SETTINGS)) await pg.query('select set_config($1, $2, false)', [name, value]);
  const asQueryable = (q: Pick<PGlite, 'query'>): Queryable => ({
    async query<T>(sql: string, params?: readonly unknown[]) {
      const result = await q.query<T>(sql, params as unknown[] | undefined);
      return result.rows;
    },
  });
  const base = asQueryable(pg);
  return {
    kind: 'pglite',
    query: base.query,
    transaction: (fn) => pg.transaction((tx) => fn(asQueryable(tx))),
    async listen(channel, onPayload) {
      const unsubscribe = await pg.listen(channel, onPayload);
      return unsubscribe;
    },
    close: () => pg.close(),
  };
}
