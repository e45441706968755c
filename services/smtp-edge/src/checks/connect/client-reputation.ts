import { BackendError } from '@smtpguard/grpc-kit';
import { defineCheck } from '../../engine/check.js';
import { type ClientReputation, sessionContext } from '../../session.js';

/**
 * reputation.CheckClient at connect: DNS block and allow lists and FCrDNS. It runs in the background while the
 * greeting delay runs and the client introduces itself; the verified host name and the allow-list result feed
 * greylisting, and a listing is delivered at RCPT (the dnsbl check) so postmaster and abuse stay reachable.
 * Trusted clients and a load balancer's own connections (its health checks) are not looked up.
 */
export const clientReputation = defineCheck({
  name: 'client-reputation',
  phase: 'connect',
  reasons: ['dnsbl.clean', 'dnsbl.listed', 'dnsbl.error'],
  settings: [
    'edge.checks.dnsbl.enabled',
    'edge.checks.dnsbl.failureMode',
    'reputation.dnsbl',
    'reputation.dnswl',
  ],
  background: true,
  enabled: (ctx) => !ctx.session.trustedRule && !ctx.session.loadBalancer,
  async run(ctx) {
    const s = ctx.session;
    let settle: (r: ClientReputation) => void = () => undefined;
    s.reputation = new Promise((resolve) => {
      settle = resolve;
    });
    try {
      const r = await ctx.deps.backends.call('reputation', ctx.deps.backends.reputation.checkClient, {
        session: sessionContext(s),
      });
      if (r.fcrdnsVerified) s.clientHostname = r.reverseHostname;
      s.dnswlListed = r.allowHits.length > 0;
      const hit = ctx.cfg.edge.checks.dnsbl.enabled ? r.blockHits[0] : undefined;
      if (hit) {
        const answers = hit.answers.join(',');
        settle({ kind: 'listed', zone: hit.zone, answers });
        return {
          outcome: 'fail',
          reason: 'dnsbl.listed',
          vars: { zone: hit.zone, answers },
          attributes: { zone: hit.zone, answers, txt: hit.txt },
        };
      }
      settle({ kind: 'clean' });
      const zones = ctx.cfg.reputation.dnsbl.zones.map((z) => z.zone).join(', ') || 'no zones';
      return {
        outcome: 'pass',
        reason: 'dnsbl.clean',
        vars: { zones },
        attributes: r.failedZones.length ? { failed_zones: r.failedZones.join(',') } : {},
      };
    } catch (err) {
      const error = err instanceof BackendError ? err.message : String(err);
      const mode = ctx.cfg.edge.checks.dnsbl.failureMode;
      // The refusal, if any, is delivered at RCPT like a listing.
      settle({ kind: 'error', refuse: mode === 'fail-closed', error });
      return {
        outcome: 'error',
        reason: 'dnsbl.error',
        vars: { error },
        attributes: { error, failure_mode: mode },
      };
    }
  },
});
