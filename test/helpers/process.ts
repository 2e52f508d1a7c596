import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { ENV_SECTIONS } from '../../src/config/schema.js';
import type { ReceivedWebhook } from './webhook-receiver.js';

/** The built CLI beside this helper: `<build>/src/cli/main.js`, run the way an operator runs it. */
const HERALD_CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** A child Herald's startup banner, printed once it serves or dispatches. */
const READY_LINE = 'Herald is running';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface HeraldProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with stdout so far once the banner is printed; rejects if the process ends first. */
  readonly ready: Promise<string>;
  readonly exited: Promise<Exit>;
  /** SIGTERM, then the exit. */
  stop(): Promise<Exit>;
}

// Children still running when the test process ends (a failed assertion skipped their stop)
// would keep the database busy and the port bound.
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * The test runner's environment without the variables Herald reads as config overrides
 * (DATABASE_URL is set for the test run itself), plus `extra`.
 */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const prefixes = [...ENV_SECTIONS.map((section) => `${section.toUpperCase()}_`), 'HERALD_'];
  const kept = Object.entries(process.env).filter(([name]) => !prefixes.some((p) => name.startsWith(p)));
  return { ...Object.fromEntries(kept), ...extra };
}

/** Starts `node <build>/src/cli/main.js ...args` with a clean environment plus `env`. */
export function spawnHerald(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): HeraldProcess {
  const child = spawn(process.execPath, [HERALD_CLI, ...args], {
    cwd: opts.cwd,
    env: childEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<Exit>((resolve) =>
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  const ready = new Promise<string>((resolve, reject) => {
    const check = () => {
      if (out.includes(READY_LINE)) {
        child.stdout!.off('data', check);
        resolve(out);
      }
    };
    child.stdout!.on('data', check);
    void exited.then(({ code, signal }) => reject(new Error(`herald exited (${code ?? signal}) before it was ready:\n${err}`)));
  });
  // A test that never awaits `ready` (the process is expected to fail) must not see it reject.
  ready.catch(() => undefined);
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    ready,
    exited,
    stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Runs the CLI to its exit. */
export async function runHerald(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const p = spawnHerald(args, opts);
  const exit = await p.exited;
  return { ...exit, stdout: p.stdout(), stderr: p.stderr() };
}

/** A `whsec_` secret of 32 random key bytes. */
export function makeWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export interface WorkerOptions {
  databaseUrl: string;
  /** The webhook provider's name: each worker may name its own, and records it on what it sends. */
  provider: string;
  secret: string;
  dispatcher?: Record<string, unknown>;
}

/**
 * Writes the config file of a worker process on PostgreSQL whose `webhook` channel sends through
 * a webhook provider. Returns the file's path.
 */
export function writeWorkerConfig(dir: string, o: WorkerOptions): string {
  const file = join(dir, `${o.provider}.yaml`);
  const config = {
    database: { url: o.databaseUrl, maxOpenConns: 4 },
    logging: { level: 'warn' },
    dispatcher: { interval: '100ms', ...o.dispatcher },
    channels: { webhook: { provider: o.provider } },
    providers: { [o.provider]: { type: 'webhook', secret: o.secret } },
  };
  writeFileSync(file, stringify(config));
  return file;
}

/** How many times each webhook-id arrived: a delivery sent once arrives once. */
export function countByWebhookId(requests: readonly ReceivedWebhook[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of requests) {
    const id = String(r.headers['webhook-id']);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}
