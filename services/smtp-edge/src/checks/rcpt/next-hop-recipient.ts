import { formatReply } from '@smtpguard/reasons';
import { DeliveryError } from '../../delivery/next-hop.js';
import { defineCheck } from '../../engine/check.js';

/**
 * The before-queue proxy's RCPT: once smtpguard's own checks passed, the recipient is offered to the next hop
 * (the first recipient opens the next hop's transaction), and the client gets the next hop's answer. So the
 * client is never told 250 for a recipient the next hop refuses. See docs/next-hop.md.
 */
export const nextHopRecipient = defineCheck({
  name: 'next-hop',
  phase: 'rcpt',
  reasons: ['rcpt.nexthop_refused', 'rcpt.nexthop_deferred', 'rcpt.nexthop_unavailable'],
  settings: ['edge.nextHop'],
  async run(ctx) {
    const tx = ctx.tx;
    const nextHop = ctx.deps.nextHop();
    if (!tx.hop) {
      const size = Number(tx.params.SIZE);
      tx.hop = nextHop.begin({
        id: tx.messageId,
        from: tx.sender,
        size: Number.isFinite(size) && size > 0 ? size : undefined,
        body8bit: String(tx.params.BODY ?? '').toUpperCase() === '8BITMIME',
        smtputf8: tx.params.SMTPUTF8 === true,
      });
    }
    const next_hop = nextHop.describe();
    let reply: Awaited<ReturnType<typeof tx.hop.rcpt>>;
    try {
      reply = await tx.hop.rcpt(ctx.rcpt.address);
    } catch (err) {
      if (!(err instanceof DeliveryError)) throw err;
      return {
        outcome: 'error',
        reason: 'rcpt.nexthop_unavailable',
        vars: { next_hop, error: err.message },
        attributes: { next_hop, error: err.message },
        refuse: true,
      };
    }
    if (reply.code < 400) return undefined;
    const hop_reply = formatReply(reply);
    const common = {
      vars: { next_hop, hop_text: reply.text, hop_reply },
      attributes: { next_hop, hop_reply },
      refuse: true,
      replyOverride: { code: reply.code, enhanced: reply.enhanced },
    };
    return reply.code >= 500
      ? { outcome: 'fail', reason: 'rcpt.nexthop_refused', ...common }
      : { outcome: 'defer', reason: 'rcpt.nexthop_deferred', ...common };
  },
});
