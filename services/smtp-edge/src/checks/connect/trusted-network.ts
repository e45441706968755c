import { defineCheck } from '../../engine/check.js';

/**
 * edge.trustedNetworks by IP (IP, CIDR, mask, wildcard, range): a matching client may relay without AUTH and
 * skips DNSBL refusals and greylisting. Host-name rules need the verified reverse name: trusted-host at MAIL.
 */
export const trustedNetwork = defineCheck({
  name: 'trusted-network',
  phase: 'connect',
  reasons: ['connect.trusted'],
  settings: ['edge.trustedNetworks'],
  run(ctx) {
    const rule = ctx.deps.trusted().matchIp(ctx.session.clientIp);
    if (!rule) return undefined;
    ctx.session.trustedRule = rule;
    return { outcome: 'pass', reason: 'connect.trusted', vars: { rule }, attributes: { rule } };
  },
});
