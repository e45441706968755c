import { defineCheck } from '../../engine/check.js';

/**
 * edge.trustedNetworks by host name or domain: matched on the client's forward-confirmed reverse DNS name, which
 * the connect-time reputation lookup finds (its result is awaited here, within its own deadline). A match makes
 * the session trusted from this transaction on. Records a decision only when it matches.
 */
export const trustedHost = defineCheck({
  name: 'trusted-host',
  phase: 'mail',
  reasons: ['mail.trusted_host'],
  settings: ['edge.trustedNetworks', 'reputation.fcrdns.enabled'],
  enabled: (ctx) => !ctx.session.trustedRule && ctx.deps.trusted().hasNames,
  async run(ctx) {
    const s = ctx.session;
    await s.reputation;
    const rule = s.clientHostname ? ctx.deps.trusted().matchName(s.clientHostname) : undefined;
    if (!rule) return undefined;
    s.trustedRule = rule;
    return {
      outcome: 'pass',
      reason: 'mail.trusted_host',
      vars: { rule, hostname_verified: s.clientHostname },
      attributes: { rule, hostname: s.clientHostname },
    };
  },
});
