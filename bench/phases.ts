/**
 * The three measurements run on each store: maximum rate through one process (API and dispatcher
 * together), a pre-filled queue drained by a worker, and latency at a fixed rate.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Role } from '../src/service.js';
import { CpuMeter, type CpuParts } from './cpu.js';
import { BENCH_APP, startHeraldProcess, stopHeraldProcess, writeHeraldConfig, type HeraldProcess } from './herald-child.js';
import { HeraldClient, type Sent } from './load.js';
import type { Arrivals, Receiver } from './receiver-child.js';
import { max, min, perSecond, quantile } from './stats.js';
import type { BenchStore } from './stores.js';

export interface PhaseOptions {
  store: BenchStore;
  receiver: Receiver;
  /** Notifications per measured run. */
  count: number;
  connections: number;
  rate: number;
  seconds: number;
}

/** What every phase reports besides its own figures. */
export interface PhaseCommon {
  /** CPU per notification over the measured window. */
  cpu: CpuParts;
  /** Peak resident memory of the Herald process(es), MB. */
  rssMb: number;
  /** The 1-minute load average when the phase began (other work on the machine skews figures). */
  load: number;
}

export interface MaxRateResult extends PhaseCommon {
  acceptedPerSecond: number;
  sentPerSecond: number;
  replyP50: number;
  replyP99: number;
}

export interface DrainResult extends PhaseCommon {
  acceptedPerSecond: number;
  /** CPU per notification of the API-only process while the queue was filled. */
  acceptCpu: CpuParts;
  apiRssMb: number;
  drained: number;
  drainPerSecond: number;
}

export interface LatencyResult extends PhaseCommon {
  sent: number;
  p50: number;
  p99: number;
  max: number;
  replyP50: number;
  replyP99: number;
}

/** Requests sent before measuring, so the measured run meets warm code and warm connections. */
const WARMUP = 500;
/** How long the receiver may wait for the last webhook of a run before the phase fails. */
const ARRIVAL_TIMEOUT_MS = 180_000;

/** A Herald process, and a client for its API when it has one. */
type Started = { herald: HeraldProcess; client?: HeraldClient };

/** A fresh database and config in a temp folder, and the Herald processes started on it. */
class Run {
  private constructor(
    private readonly o: PhaseOptions,
    private readonly dir: string,
    private readonly configFile: string,
  ) {}

  static async create(o: PhaseOptions): Promise<Run> {
    const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
    return new Run(o, dir, writeHeraldConfig(dir, await o.store.fresh()));
  }

  async start(role: Role): Promise<Started> {
    const herald = await startHeraldProcess(this.configFile, role);
    if (!herald.url) return { herald };
    const client = new HeraldClient(herald.url, BENCH_APP, this.o.connections);
    await createTemplate(client);
    return { herald, client };
  }

  meter(herald: HeraldProcess, fromReady = false): Promise<CpuMeter> {
    return CpuMeter.start(herald, this.o.receiver, this.o.store, fromReady ? herald.readyCpuMs : undefined);
  }

  /** Stops a Herald process and returns its peak RSS in MB. */
  async stop(p: Started): Promise<number> {
    await p.client?.close();
    return stopHeraldProcess(p.herald);
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

/** Warms Herald up with WARMUP notifications and, unless it only accepts, waits until they arrived. */
async function warmUp(o: PhaseOptions, client: HeraldClient, delivers: boolean): Promise<void> {
  await o.receiver.reset();
  check(await client.maxRate(o.receiver.hookBase('warmup'), WARMUP, o.connections), 'warm-up');
  if (delivers) await arrived(o.receiver, WARMUP, 'warm-up');
  await o.receiver.reset();
}

function replyTimes(sent: Sent): Float64Array {
  return sent.repliedAt.map((t, i) => t - sent.sentAt[i]!);
}

/** Starts a process on a fresh database, runs `measure` against it, stops it, and cleans up. */
async function withRun<T>(o: PhaseOptions, role: Role, measure: (run: Run, p: Started) => Promise<T>) {
  const run = await Run.create(o);
  try {
    const p = await run.start(role);
    let result: T;
    try {
      result = await measure(run, p);
    } catch (error) {
      await run.stop(p).catch(() => undefined);
      throw error;
    }
    return { result, rssMb: await run.stop(p) };
  } finally {
    run.remove();
  }
}

/** One process (role all) at the API's maximum rate: accepted/s, and sent/s from first POST to last webhook. */
export async function maxRate(o: PhaseOptions): Promise<MaxRateResult> {
  const { result, rssMb } = await withRun(o, 'all', async (run, { herald, client }) => {
    await warmUp(o, client!, true);
    const load = loadavg()[0]!;
    const meter = await run.meter(herald);
    const sent = await client!.maxRate(o.receiver.hookBase('max'), o.count, o.connections);
    check(sent, 'maximum-rate');
    const { times } = await arrived(o.receiver, o.count, 'maximum rate');
    const cpu = await meter.stop(o.count);
    const first = min(sent.sentAt);
    const replies = replyTimes(sent);
    return {
      acceptedPerSecond: perSecond(o.count, max(sent.repliedAt) - first),
      sentPerSecond: perSecond(o.count, max(times) - first),
      replyP50: quantile(replies, 0.5),
      replyP99: quantile(replies, 0.99),
      cpu,
      load,
    };
  });
  return { ...result, rssMb };
}

/**
 * The queue filled by an API-only process (dispatcher off), then drained by a worker process
 * started afterwards: the worker's rate from the first webhook to the last. PGlite's data folder
 * has one owner at a time, so the API process closes before the worker opens it.
 */
export async function drain(o: PhaseOptions): Promise<DrainResult> {
  const run = await Run.create(o);
  try {
    const load = loadavg()[0]!;
    const api = await run.start('api');
    let accept: { sent: Sent; cpu: CpuParts };
    try {
      // Warm up the API only: these stay queued and the worker drains them with the rest.
      await warmUp(o, api.client!, false);
      const meter = await run.meter(api.herald);
      const sent = await api.client!.maxRate(o.receiver.hookBase('drain'), o.count, o.connections);
      check(sent, 'pre-fill');
      accept = { sent, cpu: await meter.stop(o.count) };
    } catch (error) {
      await run.stop(api).catch(() => undefined);
      throw error;
    }
    const apiRssMb = await run.stop(api);
    const total = o.count + WARMUP;
    const worker = await run.start('worker');
    try {
      const meter = await run.meter(worker.herald, true);
      const { times } = await arrived(o.receiver, total, 'drain');
      const cpu = await meter.stop(total);
      return {
        acceptedPerSecond: perSecond(o.count, max(accept.sent.repliedAt) - min(accept.sent.sentAt)),
        acceptCpu: accept.cpu,
        apiRssMb,
        drained: total,
        drainPerSecond: perSecond(total, max(times) - min(times)),
        cpu,
        rssMb: await run.stop(worker),
        load,
      };
    } catch (error) {
      await run.stop(worker).catch(() => undefined);
      throw error;
    }
  } finally {
    run.remove();
  }
}

/** One process (role all) at a fixed rate: time from sending the POST to the webhook's arrival. */
export async function latency(o: PhaseOptions): Promise<LatencyResult> {
  const { result, rssMb } = await withRun(o, 'all', async (run, { herald, client }) => {
    await warmUp(o, client!, true);
    const load = loadavg()[0]!;
    const meter = await run.meter(herald);
    const sent = await client!.fixedRate(o.receiver.hookBase('latency'), o.rate, o.seconds);
    check(sent, 'fixed-rate');
    const n = sent.sentAt.length;
    const { seqs, times } = await arrived(o.receiver, n, 'fixed rate');
    const cpu = await meter.stop(n);
    const latencies = seqs.map((seq, i) => times[i]! - sent.sentAt[seq]!);
    const replies = replyTimes(sent);
    return {
      sent: n,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      max: max(latencies),
      replyP50: quantile(replies, 0.5),
      replyP99: quantile(replies, 0.99),
      cpu,
      load,
    };
  });
  return { ...result, rssMb };
}
