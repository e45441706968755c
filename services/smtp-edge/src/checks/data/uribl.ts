import { firstText } from '../../data/first-text.js';
import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';
import { applyVerdict } from '../reputation-verdict.js';

const REASONS = ['uribl.clean', 'uribl.listed', 'uribl.tagged', 'uribl.exempt'] as const;

/**
 * URI block lists on the message (MailEnable's URL blacklist, hMailServer's SURBL): the edge decodes the first
 * text part (the first edge.checks.uribl.maxLines lines) and reputation.CheckContent looks its links up — domains
 * in the URI lists, IP literals and the hosts' addresses in the IP lists. Refused 554 5.7.1 (or the list's own
 * code and text), or tagged. Authenticated and trusted clients are not checked.
 */
export const uribl = defineCheck({
  name: 'uribl',
  phase: 'data',
  reasons: [...REASONS, 'uribl.error'],
  settings: [
    'edge.checks.uribl.enabled',
    'edge.checks.uribl.failureMode',
    'edge.checks.uribl.maxLines',
    'reputation.uribl',
  ],
  enabled: (ctx) =>
    ctx.cfg.edge.checks.uribl.enabled &&
    !ctx.session.authorized &&
    ctx.cfg.reputation.uribl.zones.length + ctx.cfg.reputation.uribl.ipZones.length > 0,
  onBackendError: { reason: 'uribl.error', mode: (cfg) => cfg.edge.checks.uribl.failureMode },
  async run(ctx) {
    const part = await firstText(ctx.input.message, ctx.cfg.edge.checks.uribl);
    const r = await ctx.deps.backends.call('reputation', ctx.deps.backends.reputation.checkContent, {
      session: sessionContext(ctx.session),
      text: part.text,
      html: part.html,
    });
    const v = applyVerdict(r.verdict, REASONS, { skips: ['uribl.exempt'] });
    const attributes = { ...v.attributes };
    if (r.failedZones.length) attributes.failed_zones = r.failedZones.join(',');
    return { ...v, attributes };
  },
});
