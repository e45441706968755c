import { defineCheck } from '../../engine/check.js';

/** At most edge.maxRecipients per transaction: 452 4.5.3, the client sends the rest in another transaction. */
export const recipientCount = defineCheck({
  name: 'recipients',
  phase: 'rcpt',
  reasons: ['rcpt.too_many'],
  settings: ['edge.maxRecipients'],
  run(ctx) {
    const max = ctx.cfg.edge.maxRecipients;
    if (ctx.tx.recipients.length < max) return undefined;
    return { outcome: 'defer', reason: 'rcpt.too_many', vars: { max }, refuse: true };
  },
});
