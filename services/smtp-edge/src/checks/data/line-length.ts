import type { Config } from '@smtpguard/config';
import type { DataFacts } from '../../data/inspector.js';
import { defineCheck } from '../../engine/check.js';

const violated = (facts: DataFacts, cfg: Config): boolean =>
  cfg.edge.protocol.longLines === 'reject' && facts.longestLine > cfg.edge.limits.textLineOctets;

/** Message lines longer than edge.limits.textLineOctets (RFC 5321: 1000 with CRLF) get 500 5.5.2. */
export const lineLength = defineCheck({
  name: 'line-length',
  phase: 'data',
  reasons: ['data.line_too_long'],
  settings: ['edge.limits.textLineOctets', 'edge.protocol.longLines'],
  violated,
  run(ctx) {
    if (!violated(ctx.input.facts, ctx.cfg)) return undefined;
    return {
      outcome: 'fail',
      reason: 'data.line_too_long',
      vars: { length: ctx.input.facts.longestLine, limit: ctx.cfg.edge.limits.textLineOctets },
      refuse: true,
    };
  },
});
