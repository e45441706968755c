import { defineCheck } from '../../engine/check.js';

/** RCPT TO takes no parameters here (DSN is not offered): any parameter gets 555 5.5.4 (RFC 5321 4.1.1.11). */
export const rcptParams = defineCheck({
  name: 'rcpt-params',
  phase: 'rcpt',
  reasons: ['rcpt.unknown_parameter'],
  settings: [],
  run(ctx) {
    const unknown = Object.keys(ctx.input.params)[0];
    if (!unknown) return undefined;
    return { outcome: 'fail', reason: 'rcpt.unknown_parameter', vars: { parameter: unknown }, refuse: true };
  },
});
