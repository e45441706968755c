import { runService } from '@smtpguard/service-runtime';
import { Reputation } from './service.js';
import { reputationServiceBinding } from './transport/grpc.js';

runService('reputation', async ({ config, logger }) => {
  const svc = new Reputation(config, logger);
  return {
    grpc: { listen: (c) => c.reputation.listen, bindings: [reputationServiceBinding(svc)] },
    stop: async () => svc.stop(),
  };
});
