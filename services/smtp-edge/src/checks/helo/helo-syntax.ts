import { defineCheck } from '../../engine/check.js';
import { parseHeloName } from './helo-name.js';

/** The HELO/EHLO argument must be a domain name or an address literal (501 5.5.2). */
export const heloSyntax = defineCheck({
  name: 'helo-syntax',
  phase: 'helo',
  reasons: ['helo.invalid'],
  settings: [],
  run(ctx) {
    if (parseHeloName(ctx.input.arg).kind !== 'invalid') return undefined;
    return {
      outcome: 'fail',
      reason: 'helo.invalid',
      vars: { command: ctx.input.command, helo_arg: ctx.input.arg },
      refuse: true,
    };
  },
});
