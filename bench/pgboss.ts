/**
 * The reference point: pg-boss 10 on the same PostgreSQL doing the same number of no-op jobs.
 * Jobs are inserted in batches, then workers fetch them in batches and complete each batch (pg-boss
 * 10 has no teamSize: concurrency is several work() loops, each fetching `batchSize` jobs).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import PgBoss from 'pg-boss';
import pg from 'pg';
import { now } from './clock.js';
import { perSecond } from './stats.js';

export interface PgBossSettings {
  workers: number;
  batchSize: number;
  /** pg-boss 10's smallest allowed polling interval; a worker waits it out between fetches. */
  pollingIntervalSeconds: number;
}

export interface PgBossResult extends PgBossSettings {
  jobs: number;
  insertedPerSecond: number;
  completedPerSecond: number;
}

const QUEUE = 'bench';
const INSERT_BATCH = 1_000;
const SCHEMA = 'herald_bench_pgboss';

export async function runPgBoss(url: string, jobs: number, settings: PgBossSettings): Promise<PgBossResult> {
  const boss = new PgBoss({ connectionString: url, schema: SCHEMA, max: 10, supervise: false, schedule: false });
  boss.on('error', (error) => console.error('pg-boss:', error));
  await boss.start();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await boss.createQueue(QUEUE);
    const insertStart = now();
    for (let i = 0; i < jobs; i += INSERT_BATCH) {
      const size = Math.min(INSERT_BATCH, jobs - i);
      await boss.insert(Array.from({ length: size }, (_, k) => ({ name: QUEUE, data: { n: i + k } })));
    }
    const insertMs = now() - insertStart;

    const workStart = now();
    for (let w = 0; w < settings.workers; w++) {
      const { batchSize, pollingIntervalSeconds } = settings;
      await boss.work(QUEUE, { batchSize, pollingIntervalSeconds }, async () => undefined);
    }
    // work() completes a batch without waiting for the write, so count completions in the table.
    const deadline = workStart + 300_000;
    let done = 0;
    while (done < jobs && now() < deadline) {
      await sleep(20);
      const rows = await client.query<{ n: number }>(
        `select count(*)::int as n from ${SCHEMA}.job where name = $1 and state = 'completed'`,
        [QUEUE],
      );
      done = rows.rows[0]!.n;
    }
    const workMs = now() - workStart;
    if (done < jobs) throw new Error(`pg-boss completed only ${done} of ${jobs} jobs in 300 s`);
    return {
      ...settings,
      jobs,
      insertedPerSecond: perSecond(jobs, insertMs),
      completedPerSecond: perSecond(jobs, workMs),
    };
  } finally {
    await boss.stop({ graceful: false, wait: true }).catch(() => undefined);
    await client.query(`drop schema if exists ${SCHEMA} cascade`).catch(() => undefined);
    await client.end();
  }
}
