import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';

/**
 * Hourly message limit of the account (auth.ConsumeSendingQuota, counted atomically across replicas): each
 * MAIL FROM of an authenticated (or POP-before-SMTP) session counts one message; over the limit: 451 4.7.1.
 * A refused or abandoned transaction has been counted too (the limit counts attempts).
 */
export const sendingLimit = defineCheck({
  name: 'sending-limit',
  phase: 'mail',
  reasons: ['quota.ok', 'quota.messages_exceeded', 'quota.unavailable'],
  settings: ['auth.sendingLimits', 'auth.domains[].sendingLimits', 'edge.checks.sendingLimits.*'],
  enabled: (ctx) => ctx.cfg.edge.checks.sendingLimits.enabled && Boolean(ctx.session.account),
  onBackendError: { reason: 'quota.unavailable', mode: (cfg) => cfg.edge.checks.sendingLimits.failureMode },
  async run(ctx) {
    const account = ctx.session.account;
    const r = await ctx.deps.backends.call('auth', ctx.deps.backends.auth.consumeSendingQuota, {
      session: sessionContext(ctx.session),
      account,
      messages: 1,
      recipients: 0,
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
      reason: 'quota.messages_exceeded',
      vars,
      attributes: { account },
      refuse: true,
    };
  },
});
