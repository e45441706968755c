import type { Config } from '@smtpguard/config';
import type { reputation } from '@smtpguard/contracts';
import { BackendError } from '@smtpguard/grpc-kit';
import { defineCheck } from '../../engine/check.js';
import { type ClientReputation, sessionContext } from '../../session.js';
import { applyVerdict } from '../reputation-verdict.js';

const REASONS = [
  'dnsbl.clean',
  'dnsbl.listed',
  'dnsbl.deferred',
  'dnsbl.tagged',
  'dnsbl.below_threshold',
  'dnsbl.exempt',
] as const;

/** A DNS block or allow list is configured, or FCrDNS is on. */
export function somethingToCheck(cfg: Config): boolean {
  const r = cfg.reputation;
  return r.dnsbl.zones.length > 0 || r.dnswl.zones.length > 0 || r.fcrdns.enabled;
}

/**
 * reputation.CheckClient at connect: DNS block and allow lists (scored, per-zone actions, health-checked) and
 * FCrDNS. It runs in the background while the greeting delay runs and the client introduces itself; the
 * verified host name and the allow-list result feed greylisting, and the service's verdict (reject, defer, tag)
 * is delivered at RCPT (the dnsbl check) so postmaster and abuse stay reachable. Trusted clients and a
 * load balancer's own connections (its health checks) are not looked up.
 */
export const clientReputation = defineCheck({
  name: 'client-reputation',
  phase: 'connect',
  reasons: [...REASONS, 'dnsbl.error'],
  settings: [
    'edge.checks.dnsbl.enabled',
    'edge.checks.dnsbl.failureMode',
    'reputation.dnsbl',
    'reputation.dnswl',
    'reputation.exemptClients',
  ],
  background: true,
  // Nothing to ask when no list is configured and FCrDNS is off: no call at all.
  enabled: (ctx) => !ctx.session.trustedRule && !ctx.session.loadBalancer && somethingToCheck(ctx.cfg),
  async run(ctx) {
    const s = ctx.session;
    let settle: (r: ClientReputation) => void = () => undefined;
    s.reputation = new Promise((resolve) => {
      settle = resolve;
    });
    try {
      // The answer depends on the client IP only (lists, FCrDNS, exempt clients); kept per edge.cache.
      const r = await ctx.deps.caches().clients.through(s.clientIp, () =>
        ctx.deps.backends.call('reputation', ctx.deps.backends.reputation.checkClient, {
          session: sessionContext(s),
        }),
      );
      if (r.fcrdnsVerified) s.clientHostname = r.reverseHostname;
      s.dnswlListed = r.allowHits.length > 0;
      const v = applyVerdict(r.verdict, REASONS, { skips: ['dnsbl.exempt', 'dnsbl.below_threshold'] });
      settle(
        ctx.cfg.edge.checks.dnsbl.enabled
          ? { kind: 'verdict', verdict: r.verdict as reputation.Verdict }
          : { kind: 'clean' },
      );
      const attributes: Record<string, string | undefined> = { ...v.attributes, score: String(r.score) };
      if (r.failedZones.length) attributes.failed_zones = r.failedZones.join(',');
      if (r.disabledZones.length) attributes.disabled_zones = r.disabledZones.join(',');
      // The refusal or the tag is delivered at RCPT.
      return { ...v, refuse: false, replyOverride: undefined, headers: undefined, attributes };
    } catch (err) {
      const error = err instanceof BackendError ? err.message : String(err);
      const mode = ctx.cfg.edge.checks.dnsbl.failureMode;
      // The refusal, if any, is delivered at RCPT like a listing.
      settle({ kind: 'error', refuse: mode === 'fail-closed', error });
      if (!(err instanceof BackendError)) throw err;
      return {
        outcome: 'error',
        reason: 'dnsbl.error',
        vars: { error },
        attributes: { error, failure_mode: mode },
      };
    }
  },
});
