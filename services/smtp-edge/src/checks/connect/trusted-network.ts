import { defineCheck } from '../../engine/check.js';

/** edge.trustedNetworks: a matching client may relay without AUTH and skips DNSBL refusals and greylisting. */
export const trustedNetwork = defineCheck({
  name: 'trusted-network',
  phase: 'connect',
  reasons: ['connect.trusted'],
  settings: ['edge.trustedNetworks'],
  run(ctx) {
    const rule = ctx.deps.trusted().match(ctx.session.clientIp);
    if (!rule) return undefined;
    ctx.session.trustedRule = rule;
    return { outcome: 'pass', reason: 'connect.trusted', vars: { rule }, attributes: { rule } };
  },
});
