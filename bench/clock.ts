/**
 * Milliseconds on the system's monotonic clock. process.hrtime reads CLOCK_MONOTONIC, which every
 * process on the machine shares, so a time taken in the load generator and one taken in the
 * webhook receiver subtract to a true interval with sub-millisecond resolution.
 */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
