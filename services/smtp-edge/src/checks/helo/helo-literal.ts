import { canonicalIp } from '@smtpguard/networks';
import { defineCheck } from '../../engine/check.js';
import { parseHeloName } from './helo-name.js';

/** An address literal in HELO/EHLO must be the client's own address (550 5.7.1). */
export const heloLiteral = defineCheck({
  name: 'helo-literal',
  phase: 'helo',
  reasons: ['helo.literal_mismatch'],
  settings: ['edge.protocol.helo.literalMustMatch'],
  enabled: (ctx) => ctx.cfg.edge.protocol.helo.literalMustMatch,
  run(ctx) {
    const name = parseHeloName(ctx.input.arg);
    if (name.kind !== 'literal' || sameIp(name.ip, ctx.session.clientIp)) return undefined;
    return {
      outcome: 'fail',
      reason: 'helo.literal_mismatch',
      vars: { command: ctx.input.command, helo_arg: ctx.input.arg },
      refuse: true,
    };
  },
});

/** Equal addresses, whatever the notation (IPv6 zero compression, case, IPv4-mapped, dotted tails). */
function sameIp(a: string, b: string): boolean {
  const x = canonicalIp(a);
  return x !== undefined && x === canonicalIp(b);
}
