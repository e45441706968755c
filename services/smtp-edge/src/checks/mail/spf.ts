import { reputation } from '@smtpguard/contracts';
import { cacheKey, settled } from '../../cache/lookups.js';
import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';
import { applyVerdict } from '../reputation-verdict.js';

const REASONS = [
  'spf.pass',
  'spf.fail',
  'spf.softfail',
  'spf.not_pass',
  'spf.temperror',
  'spf.permerror',
] as const;

/**
 * SPF of the sender (or of the HELO name for the null sender) for the client IP, reputation.CheckSender. The
 * reputation service decides what each result does (reputation.spf: reject, defer, tag or record) and gives the
 * Received-SPF header field; a pass lets greylisting key sender pools on the domain. Skipped for authenticated
 * and trusted clients.
 */
export const spf = defineCheck({
  name: 'spf',
  phase: 'mail',
  reasons: [...REASONS, 'spf.error'],
  settings: ['edge.checks.spf.enabled', 'edge.checks.spf.failureMode', 'reputation.spf'],
  enabled: (ctx) => ctx.cfg.edge.checks.spf.enabled && !ctx.session.authorized,
  onBackendError: { reason: 'spf.error', mode: (cfg) => cfg.edge.checks.spf.failureMode },
  async run(ctx) {
    const session = sessionContext(ctx.session);
    // SPF (with its explanation and Received-SPF) depends on the client IP, the HELO name and the sender only.
    const r = await ctx.deps
      .caches()
      .spf.through(
        cacheKey(session.clientIp, session.helo, session.sender),
        () => ctx.deps.backends.call('reputation', ctx.deps.backends.reputation.checkSender, { session }),
        settled,
      );
    if (r.spf === reputation.SpfResult.SPF_RESULT_PASS) ctx.tx.spfPassDomain = r.spfDomain;
    const v = applyVerdict(r.verdict, REASONS, {
      errors: ['spf.temperror', 'spf.permerror'],
      skips: ['spf.not_pass'],
      fails: ['spf.fail', 'spf.softfail'],
    });
    return { ...v, attributes: { result: r.verdict?.vars.result, domain: r.spfDomain } };
  },
});
