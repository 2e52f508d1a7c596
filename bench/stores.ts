/** The two stores Herald runs on in the benchmark, each handing out an empty database per phase. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { processCpuMs } from './cpu.js';

export type DatabaseConfig = { url: string } | { dataDir: string };

export interface BenchStore {
  readonly name: 'postgres' | 'pglite';
  /** Config for an empty Herald database. */
  fresh(): Promise<DatabaseConfig>;
  /** CPU milliseconds so far of each server process serving the database (none for PGlite). */
  serverCpuMs(): Promise<Map<number, number>>;
  close(): Promise<void>;
}

export const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * PostgreSQL: a new database herald_bench_<random> (dropped at the end), or BENCH_DATABASE_URL as
 * given (kept). Between phases Herald's queue tables are truncated so no phase reads the previous
 * phase's rows or dead tuples.
 */
export async function postgresStore(): Promise<BenchStore & { url: string; serverVersion: string }> {
  const given = process.env.BENCH_DATABASE_URL;
  let url: string;
  let name: string | undefined;
  if (given) url = given;
  else {
    name = `herald_bench_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: DEFAULT_ADMIN_URL });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const u = new URL(DEFAULT_ADMIN_URL);
    u.pathname = `/${name}`;
    url = u.toString();
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const serverVersion = (await client.query<{ server_version: string }>('show server_version')).rows[0]!.server_version;
  return {
    name: 'postgres',
    url,
    serverVersion,
    async fresh() {
      const exists = (await client.query(`select to_regclass('deliveries') is not null as yes`)).rows[0].yes as boolean;
      if (exists) await client.query('truncate notifications, deliveries, delivery_attempts, inbox_messages');
      return { url };
    },
    async serverCpuMs() {
      const { rows } = await client.query<{ pid: number }>(
        'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
      );
      const cpu = new Map<number, number>();
      for (const { pid } of rows) {
        const ms = processCpuMs(pid);
        if (ms !== undefined) cpu.set(pid, ms);
      }
      return cpu;
    },
    async close() {
      await client.end();
      if (!name) return;
      const admin = new pg.Client({ connectionString: DEFAULT_ADMIN_URL });
      await admin.connect();
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

/** Embedded PGlite: a new data folder per phase under one temp folder, removed at the end. */
export function pgliteStore(): BenchStore {
  const root = mkdtempSync(join(tmpdir(), 'herald-bench-pglite-'));
  let n = 0;
  return {
    name: 'pglite',
    async fresh() {
      return { dataDir: join(root, `phase-${++n}`) };
    },
    async serverCpuMs() {
      return new Map();
    },
    async close() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}
