/**
 * Where the CPU goes: CPU time used by each process of the benchmark over a measured window, per
 * notification. On a 2-core machine every part competes for the same cores, so the sum of the
 * parts (not Herald's share alone) bounds the rate.
 */
import { readFileSync } from 'node:fs';
import type { HeraldProcess } from './herald-child.js';
import { ask } from './ipc.js';
import type { Receiver } from './receiver-child.js';
import type { BenchStore } from './stores.js';

/** CPU microseconds per notification, by process. */
export interface CpuParts {
  herald: number;
  /** The server processes serving Herald's connections; 0 on PGlite, which runs inside Herald. */
  postgres: number;
  /** This process: the load generator. */
  generator: number;
  receiver: number;
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ), 100 on Linux. */
const TICKS_PER_SECOND = 100;

/** User + system CPU milliseconds of a process, or undefined if it is gone. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

export async function heraldCpuMs(herald: HeraldProcess): Promise<number> {
  return (await ask<{ cpuMs: number }>(herald.child, 'cpu')).cpuMs;
}

interface Snapshot {
  herald: number;
  postgres: Map<number, number>;
  generator: number;
  receiver: number;
}

export class CpuMeter {
  private constructor(
    private readonly herald: HeraldProcess,
    private readonly receiver: Receiver,
    private readonly store: BenchStore,
    private readonly start: Snapshot,
  ) {}

  /** Starts a window; `heraldStartMs` replaces Herald's reading (e.g. its CPU when it came up). */
  static async start(herald: HeraldProcess, receiver: Receiver, store: BenchStore, heraldStartMs?: number): Promise<CpuMeter> {
    const snapshot = await CpuMeter.snapshot(herald, receiver, store);
    if (heraldStartMs !== undefined) snapshot.herald = heraldStartMs;
    return new CpuMeter(herald, receiver, store, snapshot);
  }

  private static async snapshot(herald: HeraldProcess, receiver: Receiver, store: BenchStore): Promise<Snapshot> {
    const cpu = process.cpuUsage();
    return {
      herald: await heraldCpuMs(herald),
      postgres: await store.serverCpuMs(),
      generator: (cpu.user + cpu.system) / 1000,
      receiver: await receiver.cpuMs(),
    };
  }

  /** Ends the window: CPU per notification for `count` notifications. */
  async stop(count: number): Promise<CpuParts> {
    const end = await CpuMeter.snapshot(this.herald, this.receiver, this.store);
    let postgres = 0;
    // A server process that started during the window used all its CPU inside it.
    for (const [pid, ms] of end.postgres) postgres += ms - (this.start.postgres.get(pid) ?? 0);
    const each = (ms: number) => (ms * 1000) / count;
    return {
      herald: each(end.herald - this.start.herald),
      postgres: each(postgres),
      generator: each(end.generator - this.start.generator),
      receiver: each(end.receiver - this.start.receiver),
    };
  }
}
