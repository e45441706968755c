import { reputation } from '@smtpguard/contracts';
import { defineCheck } from '../../engine/check.js';
import { applyVerdict } from '../reputation-verdict.js';

// RFC 5321 4.5.1: postmaster must be reachable; abuse by convention (RFC 2142). Exempt from DNSBL refusals.
const ALWAYS_REACHABLE = new Set(['postmaster', 'abuse']);

const REASONS = ['dnsbl.listed', 'dnsbl.deferred', 'dnsbl.tagged'] as const;

/**
 * Delivers the verdict of the connect-time lookup (client-reputation) as the reputation service decided it: a
 * listed client's recipients are refused (554 5.7.1, or 451 4.7.1 for a deferring list, or the list's own code
 * and text), except postmaster and abuse; a tagging list adds its header field to the transaction. A failed
 * lookup is refused 451 when the dnsbl check is fail-closed. Authorized sessions (AUTH, a trusted host name,
 * POP-before-SMTP; trusted IPs are not looked up) are not refused. Nothing is
 * recorded for a clean client (the connect decision says it).
 */
export const dnsbl = defineCheck({
  name: 'dnsbl',
  phase: 'rcpt',
  reasons: [...REASONS, 'dnsbl.exempt_recipient', 'dnsbl.error'],
  settings: ['edge.checks.dnsbl.enabled', 'edge.checks.dnsbl.failureMode', 'reputation.dnsbl'],
  enabled: (ctx) => Boolean(ctx.session.reputation) && !ctx.session.authorized,
  async run(ctx) {
    const verdict = await ctx.session.reputation;
    if (!verdict || verdict.kind === 'clean') return undefined;
    if (verdict.kind === 'error') {
      if (!verdict.refuse) return undefined;
      return { outcome: 'error', reason: 'dnsbl.error', vars: { error: verdict.error }, refuse: true };
    }
    const v = verdict.verdict;
    switch (v.action) {
      case reputation.ListAction.LIST_ACTION_TAG: {
        // Once per transaction, however many recipients.
        const fresh = v.headers.filter((h) => !ctx.tx.headers.includes(h));
        if (!fresh.length) return undefined;
        return { ...applyVerdict(v, REASONS), headers: fresh };
      }
      case reputation.ListAction.LIST_ACTION_REJECT:
      case reputation.ListAction.LIST_ACTION_DEFER: {
        const localPart = ctx.rcpt.address.split('@')[0]?.toLowerCase() ?? '';
        if (ALWAYS_REACHABLE.has(localPart))
          return { outcome: 'skip', reason: 'dnsbl.exempt_recipient', vars: { ...v.vars } };
        return applyVerdict(v, REASONS);
      }
      default:
        return undefined;
    }
  },
});
