import { defineCheck } from '../../engine/check.js';
import { parseHeloName } from './helo-name.js';

/** Opt-in: a HELO/EHLO host name must be fully qualified (504 5.5.2); address literals pass. */
export const heloFqdn = defineCheck({
  name: 'helo-fqdn',
  phase: 'helo',
  reasons: ['helo.not_fqdn'],
  settings: ['edge.protocol.helo.requireFqdn'],
  enabled: (ctx) => ctx.cfg.edge.protocol.helo.requireFqdn,
  run(ctx) {
    const name = parseHeloName(ctx.input.arg);
    if (name.kind !== 'domain' || name.fqdn) return undefined;
    return {
      outcome: 'fail',
      reason: 'helo.not_fqdn',
      vars: { command: ctx.input.command, helo_arg: ctx.input.arg },
      refuse: true,
    };
  },
});
