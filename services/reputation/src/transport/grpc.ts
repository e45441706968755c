import type { Resolver } from 'node:dns/promises';
import { status } from '@grpc/grpc-js';
import type { ConfigHandle } from '@smtpguard/config';
import { reputation } from '@smtpguard/contracts';
import { GrpcStatusError, notImplemented, type ServiceBinding, unaryHandler } from '@smtpguard/grpc-kit';
import { checkLists } from '../dnsbl.js';
import { fcrdns } from '../fcrdns.js';
import { checkSpf } from '../spf.js';

const spfReason: Partial<Record<reputation.SpfResult, string>> = {
  [reputation.SpfResult.SPF_RESULT_PASS]: 'spf.pass',
  [reputation.SpfResult.SPF_RESULT_FAIL]: 'spf.fail',
  [reputation.SpfResult.SPF_RESULT_TEMPERROR]: 'spf.error',
  [reputation.SpfResult.SPF_RESULT_PERMERROR]: 'spf.error',
};

export function reputationServiceBinding(deps: {
  config: ConfigHandle;
  resolver: () => Resolver;
}): ServiceBinding {
  const implementation: reputation.ReputationServiceServer = {
    checkClient: unaryHandler(async (req: reputation.CheckClientRequest) => {
      const ip = req.session?.clientIp ?? '';
      if (!ip) throw new GrpcStatusError(status.INVALID_ARGUMENT, 'session.client_ip is required');
      const r = deps.config.current.config.reputation;
      const resolver = deps.resolver();
      const [block, allow, rdns] = await Promise.all([
        checkLists(resolver, r.dnsbl.zones, ip),
        checkLists(resolver, r.dnswl.zones, ip),
        r.fcrdns.enabled ? fcrdns(resolver, ip) : Promise.resolve({ hostname: '', verified: false }),
      ]);
      return reputation.CheckClientResponse.fromPartial({
        listed: block.hits.length > 0,
        blockHits: block.hits,
        allowHits: allow.hits,
        failedZones: [...block.failedZones, ...allow.failedZones],
        reverseHostname: rdns.hostname,
        fcrdnsVerified: rdns.verified,
        reasonCode: block.hits.length ? 'dnsbl.listed' : 'dnsbl.clean',
      });
    }),
    checkSender: unaryHandler(async (req: reputation.CheckSenderRequest) => {
      const s = req.session;
      if (!s?.clientIp) throw new GrpcStatusError(status.INVALID_ARGUMENT, 'session.client_ip is required');
      const c = deps.config.current.config;
      const out = await checkSpf(deps.resolver(), {
        sender: s.sender,
        ip: s.clientIp,
        helo: s.helo,
        mta: c.edge.hostname,
        timeoutMs: c.reputation.spfTimeoutMs,
      });
      return reputation.CheckSenderResponse.fromPartial({
        spf: out.result,
        spfDomain: out.domain,
        spfExplanation: out.explanation,
        reasonCode: spfReason[out.result] ?? 'spf.not_pass',
      });
    }),
    checkHelo: notImplemented('CheckHelo'),
    checkContent: notImplemented('CheckContent'),
    verifyMessage: notImplemented('VerifyMessage'),
  };
  return {
    name: 'smtpguard.reputation.v1.ReputationService',
    definition: reputation.ReputationServiceService,
    implementation,
  };
}
