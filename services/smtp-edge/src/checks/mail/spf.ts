import { reputation } from '@smtpguard/contracts';
import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';

/**
 * SPF of the sender for the client IP (reputation.CheckSender). A pass lets greylisting key sender pools on the
 * domain; a fail is refused only with edge.checks.spf.rejectFail. Skipped for authenticated and trusted clients.
 */
export const spf = defineCheck({
  name: 'spf',
  phase: 'mail',
  reasons: ['spf.pass', 'spf.fail', 'spf.not_pass', 'spf.error'],
  settings: ['edge.checks.spf.enabled', 'edge.checks.spf.rejectFail', 'edge.checks.spf.failureMode'],
  enabled: (ctx) => ctx.cfg.edge.checks.spf.enabled && !ctx.session.authorized,
  onBackendError: { reason: 'spf.error', mode: (cfg) => cfg.edge.checks.spf.failureMode },
  async run(ctx) {
    const r = await ctx.deps.backends.call('reputation', ctx.deps.backends.reputation.checkSender, {
      session: sessionContext(ctx.session),
    });
    const result = reputation.spfResultToJSON(r.spf).replace('SPF_RESULT_', '').toLowerCase();
    const vars = { domain: r.spfDomain, result, explanation: r.spfExplanation };
    const attributes = { result, domain: r.spfDomain };
    switch (r.spf) {
      case reputation.SpfResult.SPF_RESULT_PASS:
        ctx.tx.spfPassDomain = r.spfDomain;
        return { outcome: 'pass', reason: 'spf.pass', vars, attributes };
      case reputation.SpfResult.SPF_RESULT_FAIL:
        return {
          outcome: 'fail',
          reason: 'spf.fail',
          vars,
          attributes,
          refuse: ctx.cfg.edge.checks.spf.rejectFail,
        };
      case reputation.SpfResult.SPF_RESULT_TEMPERROR:
      case reputation.SpfResult.SPF_RESULT_PERMERROR:
        return { outcome: 'error', reason: 'spf.error', vars: { ...vars, error: result }, attributes };
      default:
        return { outcome: 'skip', reason: 'spf.not_pass', vars, attributes };
    }
  },
});
