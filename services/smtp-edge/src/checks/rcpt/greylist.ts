import { greylist as contract } from '@smtpguard/contracts';
import { isReasonCode } from '@smtpguard/reasons';
import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';

const PASSES = [
  'greylist.passed',
  'greylist.whitelisted',
  'greylist.auto_whitelisted',
  'greylist.disabled_for_recipient',
  'greylist.skipped_authenticated',
] as const;
const DEFERS = ['greylist.new', 'greylist.early_retry'] as const;
type Answer = (typeof PASSES)[number] | (typeof DEFERS)[number];
const isAnswer = (code: string): code is Answer =>
  isReasonCode(code) && ([...PASSES, ...DEFERS] as readonly string[]).includes(code);

/** greylist.Check: a new triplet is deferred 451 4.7.1; authenticated and trusted sessions are not asked. */
export const greylist = defineCheck({
  name: 'greylist',
  phase: 'rcpt',
  reasons: [...PASSES, ...DEFERS, 'greylist.unavailable'],
  settings: ['edge.checks.greylist.enabled', 'edge.checks.greylist.failureMode', 'greylist'],
  enabled: (ctx) => ctx.cfg.edge.checks.greylist.enabled,
  onBackendError: { reason: 'greylist.unavailable', mode: (cfg) => cfg.edge.checks.greylist.failureMode },
  async run(ctx) {
    const s = ctx.session;
    if (s.authorized) return { outcome: 'skip', reason: 'greylist.skipped_authenticated' };
    await s.reputation; // the FCrDNS name and DNSWL result of the connect lookup
    const r = await ctx.deps.backends.call('greylist', ctx.deps.backends.greylist.check, {
      session: sessionContext(s),
      recipient: ctx.rcpt.address,
      spfPassDomain: ctx.tx.spfPassDomain,
      dnswlListed: s.dnswlListed,
    });
    const vars = {
      triplet: r.tripletKey,
      retry_after: r.retryAfterSeconds,
      delayed: r.delayedSeconds,
      rule: r.whitelistRule,
    };
    const defer = r.action === contract.Action.ACTION_DEFER;
    // The action decides; a reason that does not fit it (a defer named as a pass) falls back to the default.
    const fits = isAnswer(r.reasonCode) && (DEFERS as readonly string[]).includes(r.reasonCode) === defer;
    const reason: Answer = fits ? (r.reasonCode as Answer) : defer ? 'greylist.new' : 'greylist.passed';
    if (defer) {
      return {
        outcome: 'defer',
        reason,
        vars,
        attributes: { triplet: r.tripletKey, retry_after: String(r.retryAfterSeconds) },
        refuse: true,
      };
    }
    ctx.tx.greylistDelay = Math.max(ctx.tx.greylistDelay, r.delayedSeconds);
    const skipped =
      reason === 'greylist.skipped_authenticated' || reason === 'greylist.disabled_for_recipient';
    return { outcome: skipped ? 'skip' : 'pass', reason, vars, attributes: { triplet: r.tripletKey } };
  },
});
