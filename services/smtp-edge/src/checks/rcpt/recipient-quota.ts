import { defineCheck } from '../../engine/check.js';
import { consumeSendingQuota } from '../sending-quota.js';

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
  run: (ctx) => consumeSendingQuota(ctx, 'recipients', 'quota.recipients_exceeded'),
});
