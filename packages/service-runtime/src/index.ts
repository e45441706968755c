import {
  type Config,
  ConfigHandle,
  configPathFromArgs,
  type LoadedConfig,
  loadConfig,
} from '@smtpguard/config';
import { createDecisionPublisher, DecisionRecorder } from '@smtpguard/decisions';
import { onShutdownSignal, runMain, type ServiceBinding, startGrpcServer } from '@smtpguard/grpc-kit';
import { createLogger, type Logger } from '@smtpguard/logging';
import { stopTelemetry } from '@smtpguard/telemetry';

export interface ServiceContext {
  /** The current config; replaced when the file changes and validates. */
  config: ConfigHandle;
  logger: Logger;
  decisions: DecisionRecorder;
}

export interface ServiceParts {
  /** gRPC services to serve, on the address returned by listen(). */
  grpc?: { listen: (c: Config) => string; bindings: ServiceBinding[] };
  /** Called on SIGTERM after the gRPC server stopped accepting, before decisions are flushed. */
  stop?: () => Promise<void>;
}

/**
 * The life of every smtpguard process: load and validate the config (a bad file exits 1 naming the key),
 * create the logger and decision publisher, build the service, serve, watch the config, and on SIGTERM
 * stop in order. main.ts of each service only passes its build function.
 */
export function runService(name: string, build: (ctx: ServiceContext) => Promise<ServiceParts>): void {
  runMain(name, async () => {
    const loaded: LoadedConfig = await loadConfig(configPathFromArgs());
    const config = new ConfigHandle(loaded);
    const logger = createLogger(name, { level: loaded.config.logLevel, instance: loaded.config.instance });
    const publisher = await createDecisionPublisher(loaded, name, logger);
    const decisions = new DecisionRecorder(name, publisher, logger);
    const parts = await build({ config, logger, decisions });
    const grpc = parts.grpc
      ? await startGrpcServer(parts.grpc.listen(loaded.config), parts.grpc.bindings, logger)
      : undefined;
    config.watch((err) =>
      logger.error({ err: err.message }, 'config change rejected; keeping the previous config'),
    );
    config.onChange((c) => {
      logger.level = c.config.logLevel;
      logger.info({ file: c.file }, 'config reloaded');
    });
    // Always printed, whatever logLevel: the launcher and operators wait for this line.
    logger.child({}, { level: 'info' }).info({ config: loaded.file }, `${name} started`);
    // Started by a launcher that is gone (killed without stopping us): stop as if told to, rather than run on
    // with nobody to stop us. In a container the parent never changes.
    const parent = process.ppid;
    const orphaned = setInterval(() => {
      if (process.ppid === parent) return;
      clearInterval(orphaned);
      process.kill(process.pid, 'SIGTERM');
    }, 1000);
    orphaned.unref();
    onShutdownSignal(logger, async () => {
      config.close();
      await grpc?.shutdown();
      await parts.stop?.();
      await decisions.close();
      await stopTelemetry();
    });
  });
}
