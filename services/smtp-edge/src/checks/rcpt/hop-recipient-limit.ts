import { defineCheck } from '../../engine/check.js';

/**
 * An LMTP next hop answers each recipient after the message; one SMTP reply cannot carry different answers, so
 * the edge takes one recipient per transaction (452 4.5.3: the client sends the others in a new transaction).
 */
export const hopRecipientLimit = defineCheck({
  name: 'next-hop-limit',
  phase: 'rcpt',
  reasons: ['rcpt.one_per_transaction'],
  settings: ['edge.nextHop'],
  run(ctx) {
    const max = ctx.deps.nextHop().maxRecipients;
    if (max === 0 || ctx.tx.recipients.length < max) return undefined;
    return { outcome: 'defer', reason: 'rcpt.one_per_transaction', refuse: true };
  },
});
