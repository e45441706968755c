import { defineCheck } from '../../engine/check.js';

/** The relay decision for recipients outside the local domains (MailEnable ME-I01xx, see docs/decisions.md). */
export const relay = defineCheck({
  name: 'relay',
  phase: 'rcpt',
  reasons: [
    'relay.granted.open',
    'relay.closed',
    'relay.granted.authenticated',
    'relay.granted.trusted_ip',
    'relay.denied',
  ],
  settings: ['edge.relay.mode', 'edge.trustedNetworks'],
  enabled: (ctx) => !ctx.rcpt.local,
  run(ctx) {
    const mode = ctx.cfg.edge.relay.mode;
    const s = ctx.session;
    if (mode === 'open') return { outcome: 'pass', reason: 'relay.granted.open' };
    if (mode === 'closed') return { outcome: 'fail', reason: 'relay.closed', refuse: true };
    if (s.user) return { outcome: 'pass', reason: 'relay.granted.authenticated' };
    if (s.trustedRule)
      return { outcome: 'pass', reason: 'relay.granted.trusted_ip', vars: { rule: s.trustedRule } };
    return { outcome: 'fail', reason: 'relay.denied', refuse: true };
  },
});
