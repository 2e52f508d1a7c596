/**
 * `npm run bench`: Herald's throughput, latency and memory on PostgreSQL and on embedded PGlite,
 * with pg-boss 10 on the same PostgreSQL as the reference point. A benchmark, not a test: it takes
 * a few minutes and prints figures.
 *
 * Settings from the environment: BENCH_N (notifications per run, 20000), BENCH_CONNECTIONS (64),
 * BENCH_RATE and BENCH_SECONDS (the fixed-rate latency run, 1000/s for 10 s), BENCH_BACKENDS
 * ("postgres,pglite"), BENCH_PHASES ("max,drain,latency,pgboss"), BENCH_DATABASE_URL (a database
 * to use instead of creating one), BENCH_HERALD_NODE_ARGS (node flags for the Herald processes,
 * e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import type { CpuParts } from './cpu.js';
import { drain, latency, maxRate, type PhaseOptions } from './phases.js';
import { runPgBoss } from './pgboss.js';
import { Receiver } from './receiver-child.js';
import { fmt, table, type BackendResult, type Settings } from './report.js';
import { pgliteStore, postgresStore, type BenchStore } from './stores.js';

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

const settings: Settings = {
  count: setting('BENCH_N', 20_000),
  connections: setting('BENCH_CONNECTIONS', 64),
  rate: setting('BENCH_RATE', 1_000),
  seconds: setting('BENCH_SECONDS', 10),
};
const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(',').map((s) => s.trim());
const backends = list('BENCH_BACKENDS', 'postgres,pglite');
const phases = new Set(list('BENCH_PHASES', 'max,drain,latency,pgboss'));
// pg-boss 10 workers wait out their polling interval (0.5 s at least) between fetches, so its
// rate is at most loops x batchSize / 0.5 s: 8,000/s here. Measured on this kind of machine with
// 20,000 jobs: 4 x 100 completed 814/s, 8 x 500 4,502/s, 4 x 1,000 4,844-8,143/s (the fastest).
const PG_BOSS = { workers: 4, batchSize: 1_000, pollingIntervalSeconds: 0.5 };

const log = (text: string) => process.stdout.write(`${text}\n`);
const load = () => `load ${loadavg()[0]!.toFixed(2)}`;
const cpu = (c: CpuParts) =>
  `CPU per notification: Herald ${fmt(c.herald)} us, PostgreSQL ${fmt(c.postgres)} us, ` +
  `load generator ${fmt(c.generator)} us, receiver ${fmt(c.receiver)} us`;

async function benchStore(store: BenchStore, receiver: Receiver, result: BackendResult): Promise<void> {
  const o: PhaseOptions = { store, receiver, ...settings };
  if (phases.has('max')) {
    log(`[${store.name}] maximum rate, one process (${load()})`);
    const m = await maxRate(o);
    result.maxRate = m;
    log(
      `  accepted ${fmt(m.acceptedPerSecond)}/s (reply p50 ${m.replyP50.toFixed(1)} ms, p99 ${m.replyP99.toFixed(1)} ms), ` +
        `sent end to end ${fmt(m.sentPerSecond)}/s; Herald RSS ${fmt(m.rssMb)} MB\n  ${cpu(m.cpu)}`,
    );
  }
  if (phases.has('drain')) {
    log(`[${store.name}] pre-filled queue: API only, then a worker (${load()})`);
    const d = await drain(o);
    result.drain = d;
    log(
      `  accepted ${fmt(d.acceptedPerSecond)}/s, API RSS ${fmt(d.apiRssMb)} MB\n  ${cpu(d.acceptCpu)}\n` +
        `  worker drained ${fmt(d.drained)} at ${fmt(d.drainPerSecond)}/s, worker RSS ${fmt(d.rssMb)} MB\n  ${cpu(d.cpu)}`,
    );
  }
  if (phases.has('latency')) {
    log(`[${store.name}] fixed rate ${fmt(settings.rate)}/s for ${settings.seconds} s (${load()})`);
    const l = await latency(o);
    result.latency = l;
    log(
      `  POST->webhook p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, max ${l.max.toFixed(1)} ms over ${fmt(l.sent)}; ` +
        `POST reply p50 ${l.replyP50.toFixed(1)} ms, p99 ${l.replyP99.toFixed(1)} ms; Herald RSS ${fmt(l.rssMb)} MB\n  ${cpu(l.cpu)}`,
    );
  }
}

async function main(): Promise<void> {
  const loadBefore = loadavg()[0]!;
  const pglitePackage = new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url);
  const machine = {
    cores: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: totalmem() / 2 ** 30,
    node: process.version,
    postgres: '-',
    pglite: (JSON.parse(readFileSync(pglitePackage, 'utf8')) as { version: string }).version,
    loadBefore,
  };
  const receiver = await Receiver.start();
  const results: BackendResult[] = [];
  try {
    for (const name of backends) {
      if (name !== 'postgres' && name !== 'pglite') throw new Error(`BENCH_BACKENDS: unknown backend "${name}"`);
      const result: BackendResult = { name };
      results.push(result);
      const postgres = name === 'postgres' ? await postgresStore() : undefined;
      const store: BenchStore = postgres ?? pgliteStore();
      if (postgres) machine.postgres = postgres.serverVersion;
      try {
        await benchStore(store, receiver, result);
        if (postgres && phases.has('pgboss')) {
          log(`[postgres] pg-boss 10: ${fmt(settings.count)} no-op jobs (${load()})`);
          const boss = await runPgBoss(postgres.url, settings.count, PG_BOSS);
          result.pgBoss = boss;
          log(`  inserted ${fmt(boss.insertedPerSecond)}/s, completed ${fmt(boss.completedPerSecond)}/s`);
        }
      } catch (error) {
        result.error = (error as Error).message;
        log(`[${name}] failed: ${(error as Error).stack ?? String(error)}`);
      } finally {
        await store.close();
      }
    }
  } finally {
    receiver.stop();
  }
  log('');
  log(table(results, machine, settings));
  if (results.some((r) => r.error)) process.exitCode = 1;
}

await main();
