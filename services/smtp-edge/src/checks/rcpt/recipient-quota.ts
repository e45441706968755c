import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';

/**
 * Hourly recipient limit of the account: each recipient of an authenticated (or POP-before-SMTP) session that
 * passed the directory and relay checks counts one; over the limit: 451 4.7.1 (the client sends the rest later).
 */
export const recipientQuota = defineCheck({
  name: 'recipient-quota',
  phase: 'rcpt',
  reasons: ['quota.ok', 'quota.recipients_exceeded', 'quota.unavailable'],
  settings: ['auth.sendingLimits', 'auth.domains[].sendingLimits', 'edge.checks.sendingLimits.*'],
  enabled: (ctx) => ctx.cfg.edge.checks.sendingLimits.enabled && Boolean(ctx.session.account),
  onBackendError: { reason: 'quota.unavailable', mode: (cfg) => cfg.edge.checks.sendingLimits.failureMode },
  async run(ctx) {
    const account = ctx.session.account;
    const r = await ctx.deps.backends.call('auth', ctx.deps.backends.auth.consumeSendingQuota, {
      session: sessionContext(ctx.session),
      account,
      messages: 0,
      recipients: 1,
    });
    const vars = {
      account,
      used: r.used,
      limit: r.limit,
      recipients_used: r.recipientsUsed,
      recipient_limit: r.recipientLimit,
      resets_at: r.resetsAt?.toISOString() ?? '',
    };
    if (r.allowed) return { outcome: 'pass', reason: 'quota.ok', vars };
    return {
      outcome: 'defer',
      reason: 'quota.recipients_exceeded',
      vars,
      attributes: { account },
      refuse: true,
    };
  },
});
