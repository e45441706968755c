import type { Logger } from '@smtpguard/logging';

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits 0 (1 if stop failed). A second signal exits at once.
 * Kubernetes sends SIGTERM and waits terminationGracePeriodSeconds before SIGKILL.
 */
export function onShutdownSignal(logger: Logger, stop: (signal: string) => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    stop(signal).then(
      () => {
        logger.info('stopped');
        logger.flush?.();
        process.exit(0);
      },
      (err: Error) => {
        logger.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/** Entry-point wrapper: a start-up failure prints one clear line to stderr and exits non-zero. */
export function runMain(service: string, main: () => Promise<void>): void {
  main().catch((err: Error) => {
    process.stderr.write(`${service}: ${err.message}\n`);
    process.exit(1);
  });
}
