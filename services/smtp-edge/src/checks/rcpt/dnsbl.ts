import { defineCheck } from '../../engine/check.js';

// RFC 5321 4.5.1: postmaster must be reachable; abuse by convention (RFC 2142). Exempt from DNSBL refusals.
const ALWAYS_REACHABLE = new Set(['postmaster', 'abuse']);

/**
 * Delivers the verdict of the connect-time lookup (client-reputation): a listed client's recipients are
 * refused 554 5.7.1, except postmaster and abuse; a failed lookup is refused 451 when the dnsbl check is
 * fail-closed. Authorized sessions (AUTH, a trusted host name, POP-before-SMTP; trusted IPs are not looked up)
 * are not refused. Nothing is recorded for a clean client (the connect decision says it).
 */
export const dnsbl = defineCheck({
  name: 'dnsbl',
  phase: 'rcpt',
  reasons: ['dnsbl.listed', 'dnsbl.exempt_recipient', 'dnsbl.error'],
  settings: ['edge.checks.dnsbl.enabled', 'edge.checks.dnsbl.failureMode'],
  enabled: (ctx) => Boolean(ctx.session.reputation) && !ctx.session.authorized,
  async run(ctx) {
    const verdict = await ctx.session.reputation;
    if (!verdict || verdict.kind === 'clean') return undefined;
    if (verdict.kind === 'error') {
      if (!verdict.refuse) return undefined;
      return { outcome: 'error', reason: 'dnsbl.error', vars: { error: verdict.error }, refuse: true };
    }
    const vars = { zone: verdict.zone, answers: verdict.answers };
    const localPart = ctx.rcpt.address.split('@')[0]?.toLowerCase() ?? '';
    if (ALWAYS_REACHABLE.has(localPart)) return { outcome: 'skip', reason: 'dnsbl.exempt_recipient', vars };
    return {
      outcome: 'fail',
      reason: 'dnsbl.listed',
      vars,
      attributes: { zone: verdict.zone },
      refuse: true,
    };
  },
});
