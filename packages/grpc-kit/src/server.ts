import {
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Logger } from '@smtpguard/logging';
import { HealthImplementation } from 'grpc-health-check';

export interface ServiceBinding {
  /** Fully qualified service name, e.g. smtpguard.greylist.v1.GreylistService (for health). */
  name: string;
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface RunningGrpcServer {
  server: Server;
  port: number;
  health: HealthImplementation;
  /** Marks NOT_SERVING, lets calls in flight finish (bounded by graceMs), then stops. */
  shutdown(graceMs?: number): Promise<void>;
}

/** Starts a gRPC server with grpc.health.v1 for the whole server ("") and each service. */
export async function startGrpcServer(
  listen: string,
  bindings: ServiceBinding[],
  logger: Logger,
): Promise<RunningGrpcServer> {
  const server = new Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  const statuses: Record<string, 'SERVING'> = { '': 'SERVING' };
  for (const b of bindings) {
    server.addService(b.definition, b.implementation);
    statuses[b.name] = 'SERVING';
  }
  const health = new HealthImplementation(statuses);
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  logger.info({ listen, port, services: bindings.map((b) => b.name) }, 'gRPC server listening');
  return {
    server,
    port,
    health,
    async shutdown(graceMs = 5000) {
      for (const name of Object.keys(statuses)) health.setStatus(name, 'NOT_SERVING');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          logger.warn({ graceMs }, 'gRPC calls still running after the grace period; forcing shutdown');
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
