import { defineCheck } from '../../engine/check.js';

/** edge.protocol.emptySender refuse: MAIL FROM:<> gets 550 5.1.7 (accepting it is the RFC default). */
export const emptySender = defineCheck({
  name: 'empty-sender',
  phase: 'mail',
  reasons: ['mail.empty_sender'],
  settings: ['edge.protocol.emptySender'],
  enabled: (ctx) => ctx.cfg.edge.protocol.emptySender === 'refuse',
  run(ctx) {
    if (ctx.input.address !== '') return undefined;
    return { outcome: 'fail', reason: 'mail.empty_sender', refuse: true };
  },
});
