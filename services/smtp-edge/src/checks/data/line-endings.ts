import type { Config } from '@smtpguard/config';
import type { DataFacts, Occurrences } from '../../data/inspector.js';
import { defineCheck } from '../../engine/check.js';

const rejects = (cfg: Config) => cfg.edge.protocol.bareLineEndings === 'reject';

/**
 * Bare LF, bare CR and NUL (554 5.6.0): the material of SMTP smuggling (a "<LF>.<CR><LF>" that another server
 * takes for the end of the message). With edge.protocol.bareLineEndings normalize they are rewritten in the
 * stream instead, so the message is never stored or forwarded with them either way.
 */
export const lineEndings = defineCheck({
  name: 'line-endings',
  phase: 'data',
  reasons: ['data.bare_lf', 'data.bare_cr', 'data.nul'],
  settings: ['edge.protocol.bareLineEndings'],
  violated: (f: DataFacts, cfg) => rejects(cfg) && f.bareLf.count + f.bareCr.count + f.nul.count > 0,
  run(ctx) {
    if (!rejects(ctx.cfg)) return undefined;
    const f = ctx.input.facts;
    const found: Array<['data.bare_lf' | 'data.bare_cr' | 'data.nul', Occurrences]> = [
      ['data.bare_lf', f.bareLf],
      ['data.bare_cr', f.bareCr],
      ['data.nul', f.nul],
    ];
    const first = found.filter(([, o]) => o.count > 0).sort((a, b) => a[1].first - b[1].first)[0];
    if (!first) return undefined;
    const [reason, o] = first;
    return {
      outcome: 'fail',
      reason,
      vars: { count: o.count, offset: o.first },
      attributes: {
        bare_lf: String(f.bareLf.count),
        bare_cr: String(f.bareCr.count),
        nul: String(f.nul.count),
      },
      refuse: true,
    };
  },
});
