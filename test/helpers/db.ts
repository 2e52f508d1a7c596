import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Db } from '../../src/store/db.js';
import { openDb } from '../../src/store/db.js';

export type Backend = 'pglite' | 'postgres';

/** Every test suite runs on the embedded store, and on PostgreSQL too when DATABASE_URL is set. */
export const BACKENDS: Backend[] = process.env.DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

export interface TestDb {
  db: Db;
  /** A postgres:// URL other processes can open (PostgreSQL only). */
  url?: string;
  drop(): Promise<void>;
}

/**
 * A database of its own for one test file: an in-memory PGlite, or a new database on the
 * PostgreSQL server, dropped afterwards (CI's server is shared with later runs).
 */
export async function createTestDb(backend: Backend): Promise<TestDb> {
  if (backend === 'pglite') {
    const db = await openDb({});
    return { db, drop: () => db.close() };
  }
  const admin = process.env.DATABASE_URL!;
  const name = `herald_test_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`create database ${name}`);
  await client.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const db = await openDb({ url: url.toString(), maxConnections: 10 });
  return {
    db,
    url: url.toString(),
    async drop() {
      await db.close();
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}
