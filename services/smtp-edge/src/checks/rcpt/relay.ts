import { defineCheck } from '../../engine/check.js';

/**
 * The relay decision for recipients outside the local domains (MailEnable ME-I01xx, see docs/decisions.md): the
 * server's mode, then the session's authorization (SMTP AUTH, trusted network, POP-before-SMTP), then the sender
 * criterion (ME-I0106: a sender address that exists here, only with the unsafe edge.relay.localSenders).
 * ME-E0109 (a local sender that is not defined here) is decided at MAIL FROM by the sender check.
 */
export const relay = defineCheck({
  name: 'relay',
  phase: 'rcpt',
  reasons: [
    'relay.granted.open',
    'relay.closed',
    'relay.granted.authenticated',
    'relay.granted.trusted_ip',
    'relay.granted.pop_before_smtp',
    'relay.granted.local_sender',
    'relay.denied',
  ],
  settings: ['edge.relay.mode', 'edge.relay.localSenders', 'edge.trustedNetworks', 'auth.popBeforeSmtp'],
  enabled: (ctx) => !ctx.rcpt.local,
  run(ctx) {
    const mode = ctx.cfg.edge.relay.mode;
    const s = ctx.session;
    if (mode === 'open') return { outcome: 'pass', reason: 'relay.granted.open' };
    if (mode === 'closed') return { outcome: 'fail', reason: 'relay.closed', refuse: true };
    if (s.user) return { outcome: 'pass', reason: 'relay.granted.authenticated' };
    if (s.trustedRule)
      return { outcome: 'pass', reason: 'relay.granted.trusted_ip', vars: { rule: s.trustedRule } };
    if (s.popAccount)
      return { outcome: 'pass', reason: 'relay.granted.pop_before_smtp', vars: { account: s.popAccount } };
    const info = ctx.tx.senderInfo;
    if (ctx.cfg.edge.relay.localSenders && info?.addressKnown && !info.disabled)
      return { outcome: 'pass', reason: 'relay.granted.local_sender' };
    return { outcome: 'fail', reason: 'relay.denied', refuse: true };
  },
});
