import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';

/**
 * POP-before-SMTP (auth.CheckPopBeforeSmtp): a recent POP3/IMAP login from the client IP (and, with
 * auth.popBeforeSmtp.sendersOfAccountOnly, of an account that may use this sender) authorizes the transaction
 * as if it had authenticated. Asked at each MAIL FROM of a session that is not otherwise authorized. When the
 * lookup fails, fail-open goes on without that authorization; fail-closed answers 451 4.3.0.
 */
export const popBeforeSmtp = defineCheck({
  name: 'pop-before-smtp',
  phase: 'mail',
  reasons: ['pop.authorized', 'pop.no_entry', 'pop.sender_mismatch', 'pop.unavailable'],
  settings: ['auth.popBeforeSmtp', 'edge.checks.popBeforeSmtp.failureMode'],
  enabled: (ctx) => ctx.cfg.auth.popBeforeSmtp.enabled && !ctx.session.user && !ctx.session.trustedRule,
  onBackendError: { reason: 'pop.unavailable', mode: (cfg) => cfg.edge.checks.popBeforeSmtp.failureMode },
  async run(ctx) {
    const r = await ctx.deps.backends.call('auth', ctx.deps.backends.auth.checkPopBeforeSmtp, {
      session: sessionContext(ctx.session),
    });
    const accounts = r.accounts.join(', ');
    if (r.authorized) {
      ctx.session.popAccount = r.account;
      const expires = r.expiresAt?.toISOString() ?? '';
      return {
        outcome: 'pass',
        reason: 'pop.authorized',
        vars: { account: r.account, expires },
        attributes: { account: r.account, expires_at: expires },
      };
    }
    const reason = r.reasonCode === 'pop.sender_mismatch' ? 'pop.sender_mismatch' : 'pop.no_entry';
    return { outcome: 'skip', reason, vars: { accounts }, attributes: accounts ? { accounts } : {} };
  },
});
