import type { Logger } from 'pino';
import type { Herald } from '../service.js';

/**
 * SIGTERM or SIGINT: stop taking requests and claiming deliveries, let in-flight sends finish and
 * be recorded, hand back claimed rows not yet started, then exit 0. A second signal exits at once.
 */
export function handleSignals(herald: Herald, log: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    herald.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
