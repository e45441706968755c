import { cacheKey, settled } from '../../cache/lookups.js';
import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';
import { applyVerdict } from '../reputation-verdict.js';
import { parseHeloName } from './helo-name.js';

const REASONS = ['helo.host_match', 'helo.host_mismatch', 'helo.host_tagged', 'helo.host_skipped'] as const;

/**
 * Opt-in (hMailServer's "Check host in the HELO command"): the HELO/EHLO name must resolve to the client's
 * address, reputation.CheckHelo. A mismatch is refused 550 5.7.1, or tagged (reputation.helo.action): the
 * session's messages then carry X-Smtpguard-Tag. Address literals are helo-literal's; a DNS failure is recorded,
 * never refused. Trusted clients are not checked.
 */
export const heloHost = defineCheck({
  name: 'helo-host',
  phase: 'helo',
  reasons: [...REASONS, 'helo.host_error'],
  settings: ['edge.checks.heloHost.enabled', 'edge.checks.heloHost.failureMode', 'reputation.helo.action'],
  enabled: (ctx) => ctx.cfg.edge.checks.heloHost.enabled && !ctx.session.trustedRule,
  onBackendError: { reason: 'helo.host_error', mode: (cfg) => cfg.edge.checks.heloHost.failureMode },
  async run(ctx) {
    ctx.session.heloHeaders = [];
    if (parseHeloName(ctx.input.arg).kind !== 'domain') return undefined;
    const session = sessionContext(ctx.session);
    const r = await ctx.deps.caches().helos.through(
      cacheKey(session.clientIp, ctx.input.arg),
      () =>
        ctx.deps.backends.call('reputation', ctx.deps.backends.reputation.checkHelo, {
          session,
          helo: ctx.input.arg,
        }),
      settled,
    );
    const v = applyVerdict(r.verdict, [...REASONS, 'helo.host_error'], {
      errors: ['helo.host_error'],
      skips: ['helo.host_skipped'],
      vars: { helo_arg: ctx.input.arg, command: ctx.input.command },
    });
    // No transaction yet: a tag goes to every transaction of the session.
    if (v.headers) ctx.session.heloHeaders = v.headers;
    return { ...v, headers: undefined };
  },
});
