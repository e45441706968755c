import { defineCheck } from '../../engine/check.js';
import { consumeSendingQuota } from '../sending-quota.js';

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
  run: (ctx) => consumeSendingQuota(ctx, 'messages', 'quota.messages_exceeded'),
});
