import type { Config } from '@smtpguard/config';
import type { DataFacts } from '../../data/inspector.js';
import { defineCheck } from '../../engine/check.js';

const violated = (facts: DataFacts, cfg: Config): boolean =>
  facts.receivedHeaders > cfg.edge.limits.maxReceivedHeaders;

/** Loop detection by counting Received headers (RFC 5321 6.3): more than the limit gets 554 5.4.6. */
export const hopCount = defineCheck({
  name: 'hop-count',
  phase: 'data',
  reasons: ['data.hop_count'],
  settings: ['edge.limits.maxReceivedHeaders'],
  violated,
  run(ctx) {
    if (!violated(ctx.input.facts, ctx.cfg)) return undefined;
    return {
      outcome: 'fail',
      reason: 'data.hop_count',
      vars: { count: ctx.input.facts.receivedHeaders, limit: ctx.cfg.edge.limits.maxReceivedHeaders },
      refuse: true,
    };
  },
});
