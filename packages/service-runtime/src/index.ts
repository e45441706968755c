import {
  type Config,
  ConfigHandle,
  configPathFromArgs,
  type LoadedConfig,
  loadConfig,
} from '@smtpguard/config';
import { createDecisionPublisher, DecisionRecorder } from '@smtpguard/decisions';
import {
  LocalServices,
  onShutdownSignal,
  type RunningGrpcServer,
  runMain,
  type ServiceBinding,
  startGrpcServer,
} from '@smtpguard/grpc-kit';
import { createLogger, type Logger } from '@smtpguard/logging';
import { stopTelemetry } from '@smtpguard/telemetry';

export interface ServiceContext {
  /** The current config; replaced when the file changes and validates. */
  config: ConfigHandle;
  logger: Logger;
  decisions: DecisionRecorder;
  /**
   * The services started before this one in the same process (the one-process mode), callable without gRPC;
   * empty when each service has its own process.
   */
  local: LocalServices;
}

export interface ServiceParts {
  /** gRPC services to serve, on the address returned by listen(). */
  grpc?: { listen: (c: Config) => string; bindings: ServiceBinding[] };
  /** Called on SIGTERM after the gRPC server stopped accepting, before decisions are flushed. */
  stop?: () => Promise<void>;
}

export interface ServiceSpec {
  name: string;
  build: (ctx: ServiceContext) => Promise<ServiceParts>;
}

export interface RunningServices {
  /** The logger of the process's own lines (a rejected config change, shutting down), named processName. */
  logger: Logger;
  /** Stops the services in the reverse order of their start: gRPC first, then their parts, then decisions. */
  stop(): Promise<void>;
}

/**
 * Starts services in this process, in the given order, on one config: each gets its own logger and decision
 * recorder (as in a process of its own) and the gRPC services of those before it as local services. Each logs
 * "<name> started" once it serves. The config file is watched once for all.
 */
export async function startServices(
  loaded: LoadedConfig,
  specs: ServiceSpec[],
  processName = specs[0]?.name ?? 'smtpguard',
): Promise<RunningServices> {
  const config = new ConfigHandle(loaded);
  const local = new LocalServices();
  const started: Array<{
    logger: Logger;
    grpc?: RunningGrpcServer;
    parts: ServiceParts;
    decisions: DecisionRecorder;
  }> = [];
  const stop = async () => {
    config.close();
    for (const s of [...started].reverse()) {
      await s.grpc?.shutdown();
      await s.parts.stop?.();
      await s.decisions.close();
    }
    await stopTelemetry();
  };
  try {
    for (const { name, build } of specs) {
      const logger = createLogger(name, { level: loaded.config.logLevel, instance: loaded.config.instance });
      const publisher = await createDecisionPublisher(loaded, name, logger);
      const decisions = new DecisionRecorder(name, publisher, logger);
      let parts: ServiceParts;
      try {
        parts = await build({ config, logger, decisions, local });
      } catch (err) {
        await decisions.close();
        throw err;
      }
      const entry: (typeof started)[number] = { logger, parts, decisions };
      started.push(entry);
      if (parts.grpc) {
        entry.grpc = await startGrpcServer(parts.grpc.listen(loaded.config), parts.grpc.bindings, logger);
        for (const b of parts.grpc.bindings) local.add(b);
      }
      config.onChange((c) => {
        logger.level = c.config.logLevel;
        logger.info({ file: c.file }, 'config reloaded');
      });
      // Always printed, whatever logLevel: the launcher and operators wait for this line.
      logger.child({}, { level: 'info' }).info({ config: loaded.file }, `${name} started`);
    }
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  const own = createLogger(processName, { level: loaded.config.logLevel, instance: loaded.config.instance });
  config.onChange((c) => {
    own.level = c.config.logLevel;
  });
  config.watch((err) =>
    own.error({ err: err.message }, 'config change rejected; keeping the previous config'),
  );
  return { logger: own, stop };
}

/**
 * The life of every smtpguard service process: load and validate the config (a bad file exits 1 naming the
 * key), create the logger and decision publisher, build the service, serve, watch the config, and on SIGTERM
 * stop in order. main.ts of each service only passes its build function.
 */
export function runService(name: string, build: ServiceSpec['build']): void {
  runMain(name, async () => {
    const loaded: LoadedConfig = await loadConfig(configPathFromArgs());
    const running = await startServices(loaded, [{ name, build }]);
    // Started by a launcher that is gone (killed without stopping us): stop as if told to, rather than run on
    // with nobody to stop us. In a container the parent never changes.
    const parent = process.ppid;
    const orphaned = setInterval(() => {
      if (process.ppid === parent) return;
      clearInterval(orphaned);
      process.kill(process.pid, 'SIGTERM');
    }, 1000);
    orphaned.unref();
    onShutdownSignal(running.logger, () => running.stop());
  });
}
