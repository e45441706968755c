import type { Resolver } from 'node:dns/promises';
import { status } from '@grpc/grpc-js';
import type { ConfigHandle } from '@smtpguard/config';
import { reputation } from '@smtpguard/contracts';
import { GrpcStatusError, notImplemented, type ServiceBinding, unaryHandler } from '@smtpguard/grpc-kit';
import { checkDnsbl } from '../dnsbl.js';

export function reputationServiceBinding(deps: {
  config: ConfigHandle;
  resolver: () => Resolver;
}): ServiceBinding {
  const implementation: reputation.ReputationServiceServer = {
    checkClient: unaryHandler(async (req: reputation.CheckClientRequest) => {
      const ip = req.session?.clientIp ?? '';
      if (!ip) throw new GrpcStatusError(status.INVALID_ARGUMENT, 'session.client_ip is required');
      const { hits, failedZones } = await checkDnsbl(
        deps.resolver(),
        deps.config.current.config.reputation.dnsbl.zones,
        ip,
      );
      return reputation.CheckClientResponse.fromPartial({
        listed: hits.length > 0,
        blockHits: hits,
        failedZones,
        reasonCode: hits.length ? 'dnsbl.listed' : 'dnsbl.clean',
      });
    }),
    checkHelo: notImplemented('CheckHelo'),
    checkSender: notImplemented('CheckSender'),
    checkContent: notImplemented('CheckContent'),
    verifyMessage: notImplemented('VerifyMessage'),
  };
  return {
    name: 'smtpguard.reputation.v1.ReputationService',
    definition: reputation.ReputationServiceService,
    implementation,
  };
}
