import { credentials, makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

const HealthClient = makeGenericClientConstructor(healthService, 'Health');

/**
 * Asks a server's grpc.health.v1 Check (the overall status, service ""): "SERVING", "NOT_SERVING", "UNKNOWN",
 * or the error when it cannot be asked ("UNAVAILABLE: ...").
 */
export function healthCheck(address: string, deadlineMs: number): Promise<string> {
  const client = new HealthClient(address, credentials.createInsecure()) as InstanceType<
    typeof HealthClient
  > & {
    check: (
      req: { service: string },
      opts: { deadline: number },
      cb: (err: ServiceError | null, res?: { status?: string | number }) => void,
    ) => void;
  };
  return new Promise<string>((resolve) => {
    client.check(
      { service: '' },
      { deadline: Date.now() + deadlineMs },
      (err: ServiceError | null, res?: { status?: string | number }) => {
        client.close();
        if (err)
          resolve(`${err.code === 4 ? 'DEADLINE_EXCEEDED' : 'UNAVAILABLE'}: ${err.details || err.message}`);
        else
          resolve(
            typeof res?.status === 'number'
              ? (['UNKNOWN', 'SERVING', 'NOT_SERVING'][res.status] ?? 'UNKNOWN')
              : String(res?.status ?? 'UNKNOWN'),
          );
      },
    );
  });
}
