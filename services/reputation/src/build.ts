import type { ServiceContext, ServiceParts } from '@smtpguard/service-runtime';
import { Reputation } from './service.js';
import { reputationServiceBinding } from './transport/grpc.js';

/** The reputation service: its state, its gRPC binding, how it stops. */
export async function buildReputation({ config, logger }: ServiceContext): Promise<ServiceParts> {
  const svc = new Reputation(config, logger);
  return {
    grpc: { listen: (c) => c.reputation.listen, bindings: [reputationServiceBinding(svc)] },
    stop: async () => svc.stop(),
  };
}
