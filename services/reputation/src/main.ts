import { runService } from '@smtpguard/service-runtime';
import { createResolver } from './dns.js';
import { reputationServiceBinding } from './transport/grpc.js';

runService('reputation', async ({ config, logger }) => {
  let resolver = createResolver(config.current.config.reputation.dns);
  config.onChange((c) => {
    resolver = createResolver(c.config.reputation.dns);
  });
  const { dns, dnsbl, dnswl } = config.current.config.reputation;
  logger.info(
    {
      dnsServers: dns.servers.length ? dns.servers : 'system',
      dnsbl: dnsbl.zones.map((z) => z.zone),
      dnswl: dnswl.zones.map((z) => z.zone),
    },
    'DNS lists',
  );
  return {
    grpc: {
      listen: (c) => c.reputation.listen,
      bindings: [reputationServiceBinding({ config, resolver: () => resolver })],
    },
  };
});
