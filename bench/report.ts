/** The benchmark's closing table. */
import type { DrainResult, LatencyResult, MaxRateResult } from './phases.js';
import type { PgBossResult } from './pgboss.js';

export interface BackendResult {
  name: 'postgres' | 'pglite';
  maxRate?: MaxRateResult;
  drain?: DrainResult;
  latency?: LatencyResult;
  /** The reference run on the same PostgreSQL (postgres only). */
  pgBoss?: PgBossResult;
  error?: string;
}

export interface Machine {
  cores: number;
  cpu: string;
  memoryGiB: number;
  node: string;
  postgres: string;
  pglite: string;
  loadBefore: number;
}

export interface Settings {
  count: number;
  connections: number;
  rate: number;
  seconds: number;
}

interface Row {
  label: string;
  target: string;
  value: (r: BackendResult) => number | undefined;
  digits?: number;
  /** Whether a figure meets the target. */
  ok?: (v: number) => boolean;
}

function peakRssMb(r: BackendResult): number | undefined {
  const all = [r.maxRate?.rssMb, r.drain?.apiRssMb, r.drain?.rssMb, r.latency?.rssMb].filter((v) => v !== undefined);
  return all.length ? Math.max(...all) : undefined;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a / b;
}

const ROWS: Row[] = [
  { label: 'accepted/s, API only (role api)', target: '>= 5,000', value: (r) => r.drain?.acceptedPerSecond, ok: (v) => v >= 5_000 },
  { label: 'accepted/s, API + dispatcher (role all)', target: '', value: (r) => r.maxRate?.acceptedPerSecond },
  { label: 'sent/s end to end (role all)', target: '>= 5,000', value: (r) => r.maxRate?.sentPerSecond, ok: (v) => v >= 5_000 },
  { label: 'sent/s draining a pre-filled queue', target: '', value: (r) => r.drain?.drainPerSecond },
  { label: 'POST reply p99 at max rate (ms)', target: '', value: (r) => r.maxRate?.replyP99, digits: 1 },
  { label: 'POST->webhook p50 at fixed rate (ms)', target: '', value: (r) => r.latency?.p50, digits: 1 },
  { label: 'POST->webhook p99 at fixed rate (ms)', target: '<= 50', value: (r) => r.latency?.p99, digits: 1, ok: (v) => v <= 50 },
  { label: 'POST->webhook max at fixed rate (ms)', target: '', value: (r) => r.latency?.max, digits: 1 },
  { label: 'peak RSS of a Herald process (MB)', target: '<= 200', value: peakRssMb, ok: (v) => v <= 200 },
  { label: 'CPU us per notification at max rate: Herald', target: '', value: (r) => r.maxRate?.cpu.herald },
  { label: '  PostgreSQL server', target: '', value: (r) => r.maxRate?.cpu.postgres },
  { label: '  load generator + receiver', target: '', value: (r) => r.maxRate && r.maxRate.cpu.generator + r.maxRate.cpu.receiver },
  { label: 'pg-boss 10 no-op jobs completed/s', target: '', value: (r) => r.pgBoss?.completedPerSecond },
  {
    label: 'Herald drain sent/s / pg-boss',
    target: '',
    value: (r) => ratio(r.drain?.drainPerSecond, r.pgBoss?.completedPerSecond),
    digits: 2,
  },
  {
    label: 'Herald end-to-end sent/s / pg-boss',
    target: '',
    value: (r) => ratio(r.maxRate?.sentPerSecond, r.pgBoss?.completedPerSecond),
    digits: 2,
  },
  { label: 'load average (1 min) at max-rate start', target: '', value: (r) => r.maxRate?.load, digits: 2 },
];

export function fmt(v: number | undefined, digits = 0): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function table(results: BackendResult[], machine: Machine, settings: Settings): string {
  const rows = [
    ['', 'target', ...results.map((r) => r.name)],
    ...ROWS.map((row) => [
      row.label,
      row.target,
      ...results.map((r) => {
        const v = row.value(r);
        const mark = v !== undefined && row.ok ? (row.ok(v) ? ' ok' : ' !!') : '   ';
        return `${fmt(v, row.digits)}${mark}`;
      }),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const text = rows.map((cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  const boss = results.find((r) => r.pgBoss)?.pgBoss;
  return [
    `Herald benchmark: ${fmt(settings.count)} notifications per run, ${settings.connections} keep-alive connections, ` +
      `fixed rate ${fmt(settings.rate)}/s for ${settings.seconds} s; one webhook recipient each, to a local receiver process`,
    ...text,
    ...results.filter((r) => r.error).map((r) => `${r.name}: FAILED: ${r.error}`),
    boss
      ? `pg-boss: ${boss.workers} work() loops x batchSize ${boss.batchSize}, polling ${boss.pollingIntervalSeconds} s; ` +
        `inserted at ${fmt(boss.insertedPerSecond)}/s in batches of 1,000`
      : '',
    `machine: ${machine.cores} cores (${machine.cpu}), ${machine.memoryGiB.toFixed(1)} GiB, node ${machine.node}, ` +
      `PostgreSQL ${machine.postgres}, PGlite ${machine.pglite}; load average before the run ${machine.loadBefore.toFixed(2)}`,
  ]
    .filter(Boolean)
    .join('\n');
}
