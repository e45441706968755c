import type { Config } from '@smtpguard/config';
import type { DataFacts } from '../../data/inspector.js';
import { defineCheck } from '../../engine/check.js';

const violated = (facts: DataFacts, cfg: Config): boolean => facts.bytes > cfg.edge.maxMessageBytes;

/** The message may not exceed edge.maxMessageBytes (552 5.3.4); nothing past the limit is kept. */
export const messageSize = defineCheck({
  name: 'size',
  phase: 'data',
  reasons: ['data.size_exceeded'],
  settings: ['edge.maxMessageBytes'],
  violated,
  run(ctx) {
    if (!violated(ctx.input.facts, ctx.cfg)) return undefined;
    return {
      outcome: 'fail',
      reason: 'data.size_exceeded',
      vars: { max_bytes: ctx.cfg.edge.maxMessageBytes },
      attributes: { bytes: String(ctx.input.facts.bytes) },
      refuse: true,
    };
  },
});
