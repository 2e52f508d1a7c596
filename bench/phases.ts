/**
 * The three measurements run on each store: maximum rate through one process (API and dispatcher
 * together), a pre-filled queue drained by a worker, and latency at a fixed rate.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Role } from '../src/service.js';
import {
  BENCH_APP,
  startHeraldProcess,
  stopHeraldProcess,
  writeHeraldConfig,
  type HeraldProcess,
  type HeraldUsage,
} from './herald-child.js';
import { HeraldClient, type Sent } from './load.js';
import type { Arrivals, Receiver } from './receiver-child.js';
import { max, min, perSecond, quantile } from './stats.js';
import type { BenchStore, DatabaseConfig } from './stores.js';

export interface PhaseOptions {
  store: BenchStore;
  receiver: Receiver;
  /** Notifications per measured run. */
  count: number;
  connections: number;
  rate: number;
  seconds: number;
}

export interface Usage extends HeraldUsage {
  /** Herald's CPU time over the phase's wall time: 1.0 is one core busy throughout. */
  cores: number;
  /** Herald's CPU time per notification it handled (warm-up included), in microseconds. */
  cpuUsEach: number;
}

export interface MaxRateResult {
  acceptedPerSecond: number;
  sentPerSecond: number;
  replyP50: number;
  replyP99: number;
  usage: Usage;
  load: number;
}

export interface DrainResult {
  acceptedPerSecond: number;
  drained: number;
  drainPerSecond: number;
  api: Usage;
  worker: Usage;
  load: number;
}

export interface LatencyResult {
  sent: number;
  p50: number;
  p99: number;
  max: number;
  replyP50: number;
  replyP99: number;
  usage: Usage;
  load: number;
}

/** Requests sent before measuring, so the measured run meets warm code and warm connections. */
const WARMUP = 500;
/** How long the receiver may wait for the last webhook of a run before the phase fails. */
const ARRIVAL_TIMEOUT_MS = 180_000;

/** A Herald process on a fresh database, with the benchmark's template, and its own temp folder. */
class Run {
  private constructor(
    readonly dir: string,
    readonly configFile: string,
  ) {}

  static async create(store: BenchStore): Promise<Run> {
    const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
    const database: DatabaseConfig = await store.fresh();
    return new Run(dir, writeHeraldConfig(dir, database));
  }

  async start(
    role: Role,
    connections: number,
  ): Promise<{ herald: HeraldProcess; client: HeraldClient | undefined; startedAt: number }> {
    const herald = await startHeraldProcess(this.configFile, role);
    const client = herald.url ? new HeraldClient(herald.url, BENCH_APP, connections) : undefined;
    return { herald, client, startedAt: performance.now() };
  }

  async stop(herald: HeraldProcess, client: HeraldClient | undefined, startedAt: number, handled: number): Promise<Usage> {
    await client?.close();
    const usage = await stopHeraldProcess(herald);
    return { ...usage, cores: usage.cpuMs / (performance.now() - startedAt), cpuUsEach: (usage.cpuMs * 1000) / handled };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function createTemplate(client: HeraldClient): Promise<void> {
  const res = await client.call('POST', '/api/v1/templates', {
    name: 'bench',
    channel: 'webhook',
    subject: 'Bench {{ .n }}',
    body: 'Notification {{ .n }} for {{ .who }}',
  });
  if (res.status !== 201 && res.status !== 409) throw new Error(`creating the template failed: HTTP ${res.status} ${res.text}`);
}

function check(sent: Sent, what: string): void {
  if (sent.errors > 0) throw new Error(`${sent.errors} of ${sent.sentAt.length} ${what} requests failed; first: ${sent.firstError}`);
}

async function arrived(receiver: Receiver, n: number, what: string): Promise<Arrivals> {
  const got = await receiver.waitFor(n, ARRIVAL_TIMEOUT_MS);
  if (got < n) throw new Error(`${what}: only ${got} of ${n} webhooks arrived within ${ARRIVAL_TIMEOUT_MS / 1000} s`);
  return receiver.arrivals();
}

/** Warms Herald up with WARMUP notifications and waits until they all arrived. */
async function warmUp(o: PhaseOptions, client: HeraldClient): Promise<void> {
  await o.receiver.reset();
  check(await client.maxRate(o.receiver.hookBase('warmup'), WARMUP, o.connections), 'warm-up');
  await arrived(o.receiver, WARMUP, 'warm-up');
  await o.receiver.reset();
}

function replyTimes(sent: Sent): Float64Array {
  return sent.repliedAt.map((t, i) => t - sent.sentAt[i]!);
}

/** One process (role all) at the API's maximum rate: accepted/s, and sent/s from first POST to last webhook. */
export async function maxRate(o: PhaseOptions): Promise<MaxRateResult> {
  const run = await Run.create(o.store);
  const { herald, client, startedAt } = await run.start('all', o.connections);
  try {
    await createTemplate(client!);
    await warmUp(o, client!);
    const load = loadavg()[0]!;
    const sent = await client!.maxRate(o.receiver.hookBase('max'), o.count, o.connections);
    check(sent, 'maximum-rate');
    const { times } = await arrived(o.receiver, o.count, 'maximum rate');
    const first = min(sent.sentAt);
    const replies = replyTimes(sent);
    return {
      acceptedPerSecond: perSecond(o.count, max(sent.repliedAt) - first),
      sentPerSecond: perSecond(o.count, max(times) - first),
      replyP50: quantile(replies, 0.5),
      replyP99: quantile(replies, 0.99),
      usage: await run.stop(herald, client, startedAt, WARMUP + o.count),
      load,
    };
  } catch (error) {
    await run.stop(herald, client, startedAt, 1).catch(() => undefined);
    throw error;
  } finally {
    run.remove();
  }
}

/**
 * The queue filled by an API-only process (dispatcher off), then drained by a worker process
 * started afterwards: the worker's rate from the first webhook to the last.
 */
export async function drain(o: PhaseOptions): Promise<DrainResult> {
  const run = await Run.create(o.store);
  try {
    const api = await run.start('api', o.connections);
    let sent: Sent;
    let apiUsage: Usage;
    const load = loadavg()[0]!;
    try {
      await createTemplate(api.client!);
      // Warm up the API only: these stay queued and the worker drains them with the rest.
      check(await api.client!.maxRate(o.receiver.hookBase('warmup'), WARMUP, o.connections), 'warm-up');
      await o.receiver.reset();
      sent = await api.client!.maxRate(o.receiver.hookBase('drain'), o.count, o.connections);
      check(sent, 'pre-fill');
    } finally {
      // PGlite's data folder has one owner at a time: the API process closes before the worker opens it.
      apiUsage = await run.stop(api.herald, api.client, api.startedAt, WARMUP + o.count);
    }
    const total = o.count + WARMUP;
    const worker = await run.start('worker', o.connections);
    try {
      const { times } = await arrived(o.receiver, total, 'drain');
      return {
        acceptedPerSecond: perSecond(o.count, max(sent.repliedAt) - min(sent.sentAt)),
        drained: total,
        drainPerSecond: perSecond(total, max(times) - min(times)),
        api: apiUsage,
        worker: await run.stop(worker.herald, worker.client, worker.startedAt, total),
        load,
      };
    } catch (error) {
      await run.stop(worker.herald, worker.client, worker.startedAt, 1).catch(() => undefined);
      throw error;
    }
  } finally {
    run.remove();
  }
}

/** One process (role all) at a fixed rate: time from sending the POST to the webhook's arrival. */
export async function latency(o: PhaseOptions): Promise<LatencyResult> {
  const run = await Run.create(o.store);
  const { herald, client, startedAt } = await run.start('all', o.connections);
  try {
    await createTemplate(client!);
    await warmUp(o, client!);
    const load = loadavg()[0]!;
    const sent = await client!.fixedRate(o.receiver.hookBase('latency'), o.rate, o.seconds);
    check(sent, 'fixed-rate');
    const n = sent.sentAt.length;
    const { seqs, times } = await arrived(o.receiver, n, 'fixed rate');
    const latencies = seqs.map((seq, i) => times[i]! - sent.sentAt[seq]!);
    const replies = replyTimes(sent);
    return {
      sent: n,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      max: max(latencies),
      replyP50: quantile(replies, 0.5),
      replyP99: quantile(replies, 0.99),
      usage: await run.stop(herald, client, startedAt, WARMUP + n),
      load,
    };
  } catch (error) {
    await run.stop(herald, client, startedAt, 1).catch(() => undefined);
    throw error;
  } finally {
    run.remove();
  }
}
