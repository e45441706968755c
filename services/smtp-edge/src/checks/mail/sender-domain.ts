import { cacheKey, settled } from '../../cache/lookups.js';
import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';
import { applyVerdict } from '../reputation-verdict.js';

const REASONS = [
  'sender.domain_ok',
  'sender.domain_skipped',
  'sender.domain_not_found',
  'sender.no_mx',
  'sender.null_mx',
  'sender.domain_error',
] as const;

/**
 * Opt-in: the MAIL FROM domain must exist and accept mail (MX, or A/AAAA per RFC 5321 5.1; a null MX per RFC
 * 7505 does not), reputation.CheckSenderDomain. Refused 550 5.1.8 (or 501, reputation.senderDomain.replyCode);
 * a DNS failure is a 451 4.4.3, never a refusal. Skipped for the null sender and authorized clients.
 */
export const senderDomain = defineCheck({
  name: 'sender-domain',
  phase: 'mail',
  reasons: REASONS,
  settings: [
    'edge.checks.senderDomain.enabled',
    'edge.checks.senderDomain.failureMode',
    'reputation.senderDomain',
  ],
  enabled: (ctx) =>
    ctx.cfg.edge.checks.senderDomain.enabled && !ctx.session.authorized && Boolean(ctx.tx.sender),
  onBackendError: { reason: 'sender.domain_error', mode: (cfg) => cfg.edge.checks.senderDomain.failureMode },
  async run(ctx) {
    const session = sessionContext(ctx.session);
    const r = await ctx.deps
      .caches()
      .senderDomains.through(
        cacheKey(session.sender),
        () =>
          ctx.deps.backends.call('reputation', ctx.deps.backends.reputation.checkSenderDomain, { session }),
        settled,
      );
    return applyVerdict(r.verdict, REASONS, {
      errors: ['sender.domain_error'],
      skips: ['sender.domain_skipped'],
    });
  },
});
