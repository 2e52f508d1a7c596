/** Starts and stops Herald processes (herald-process.js) for the benchmark. */
import { fork, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Role } from '../src/service.js';
import { ask, once } from './ipc.js';

export const BENCH_APP = { appId: 'bench', appSecret: 'bench-secret-0123456789abcdef' };
const WEBHOOK_SECRET = `whsec_${Buffer.from('herald-bench-webhook-signing-key').toString('base64')}`;

export interface HeraldProcess {
  child: ChildProcess;
  url: string;
  startedAt: number;
  readyAt: number;
}

export interface HeraldUsage {
  maxRssKb: number;
  cpuMs: number;
}

/** Writes the config and credentials files a benchmark Herald runs with, into `dir`. */
export function writeHeraldConfig(dir: string, database: { url: string } | { dataDir: string }): string {
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
  const ready = await once<{ url?: string; startedAt: number; readyAt: number }>(child, 'ready');
  return { child, url: ready.url ?? '', startedAt: ready.startedAt, readyAt: ready.readyAt };
}

/** Closes Herald gracefully and returns its peak resident memory and CPU time since it was up. */
export async function stopHeraldProcess(p: HeraldProcess): Promise<HeraldUsage> {
  const exited = new Promise((resolve) => p.child.once('exit', resolve));
  const usage = await ask<HeraldUsage>(p.child, 'stop');
  await exited;
  return { maxRssKb: usage.maxRssKb, cpuMs: usage.cpuMs };
}
