/** Starts and stops Herald processes (herald-process.js) for the benchmark. */
import { fork, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Role } from '../src/service.js';
import { ask, once } from './ipc.js';
import type { DatabaseConfig } from './stores.js';

export const BENCH_APP = { appId: 'bench', appSecret: 'bench-secret-0123456789abcdef' };
const WEBHOOK_SECRET = `whsec_${Buffer.from('herald-bench-webhook-signing-key').toString('base64')}`;

export interface HeraldProcess {
  child: ChildProcess;
  /** The API's base URL; empty for a worker. */
  url: string;
  /** CPU milliseconds it took to come up (PGlite's initdb takes seconds). */
  readyCpuMs: number;
}

/** Writes the config and credentials files a benchmark Herald runs with, into `dir`. */
export function writeHeraldConfig(dir: string, database: DatabaseConfig): string {
  const credentials = join(dir, 'apps.yaml');
  writeFileSync(credentials, stringify({ apps: [BENCH_APP] }));
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    stringify({
      server: { address: '127.0.0.1:0' },
      database,
      auth: { enabled: true, credentialsFilePath: credentials },
      logging: { level: 'warn' },
      channels: { webhook: { provider: 'hook' } },
      providers: { hook: { type: 'webhook', secret: WEBHOOK_SECRET } },
    }),
  );
  return file;
}

/**
 * Forks a Herald process; BENCH_HERALD_NODE_ARGS adds node flags to it (e.g. "--cpu-prof
 * --cpu-prof-dir=/tmp/herald-prof" to profile Herald under load).
 */
export async function startHeraldProcess(configFile: string, role: Role): Promise<HeraldProcess> {
  const execArgv = (process.env.BENCH_HERALD_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const child = fork(new URL('./herald-process.js', import.meta.url), [configFile, role], { execArgv, stdio: 'inherit' });
  const ready = await once<{ url?: string; cpuMs: number }>(child, 'ready');
  return { child, url: ready.url ?? '', readyCpuMs: ready.cpuMs };
}

/** Closes Herald gracefully and returns its peak resident memory in MB. */
export async function stopHeraldProcess(p: HeraldProcess): Promise<number> {
  const exited = new Promise((resolve) => p.child.once('exit', resolve));
  const { maxRssKb } = await ask<{ maxRssKb: number }>(p.child, 'stop');
  await exited;
  return maxRssKb / 1024;
}
