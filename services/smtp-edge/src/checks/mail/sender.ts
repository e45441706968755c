import type { auth } from '@smtpguard/contracts';
import { cacheKey } from '../../cache/lookups.js';
import { defineCheck } from '../../engine/check.js';
import type { Session } from '../../session.js';
import { sessionContext } from '../../session.js';

/** Which ways to be authorized failed, with the session's values (GMS alert 8013's list). */
function failedWays(s: Session, r: auth.ResolveSenderResponse, popEnabled: boolean): string {
  return [
    `no SMTP AUTH in session ${s.id}`,
    `${s.clientIp}${s.clientHostname ? ` (${s.clientHostname})` : ''} is not in edge.trustedNetworks`,
    r.allowedIpCount
      ? `${s.clientIp} is not one of the ${r.allowedIpCount} allowed IPs of ${r.domain}`
      : `${r.domain} has no allowed IPs (auth.domains[].localSenders.allowedIps)`,
    popEnabled
      ? `no POP-before-SMTP login from ${s.clientIp} within auth.popBeforeSmtp.windowSeconds`
      : 'POP-before-SMTP is off (auth.popBeforeSmtp.enabled)',
  ].join('; ');
}

function way(s: Session, r: auth.ResolveSenderResponse): string {
  if (s.user) return `authenticated as ${s.user}`;
  if (s.trustedRule) return `trusted (${s.trustedRule})`;
  if (s.popAccount) return `POP-before-SMTP as ${s.popAccount}`;
  if (r.allowedIpRule) return `allowed IP of ${r.domain} (${r.allowedIpRule})`;
  return 'no authorization needed';
}

/**
 * The sender at MAIL FROM (auth.ResolveSender), before any body is sent:
 * - a local-domain sender must come from an authorized session or an IP allowed for the domain (GMS alert 8013,
 *   IceWarp "Reject if originator's domain is local and not authorized"), refused 550 or 451 per setting;
 * - an SMTP AUTH user may only use addresses the directory gives them (MailEnable 551);
 * - an unauthenticated, untrusted sender whose local address does not exist or is disabled: 551 (ME-E0109).
 * The answer is kept on the transaction for the relay decision and the local-only policy.
 */
export const sender = defineCheck({
  name: 'sender',
  phase: 'mail',
  reasons: [
    'mail.sender_local',
    'mail.sender_remote',
    'mail.local_sender_unauthorized',
    'mail.local_sender_unauthorized_temp',
    'mail.sender_not_owned',
    'relay.denied.sender_unknown',
    'mail.sender_unavailable',
  ],
  settings: [
    'edge.checks.sender.*',
    'auth.localSenders',
    'auth.domains[].localSenders',
    'auth.domains[].mailboxes[].sendAs',
  ],
  // The null sender is looked up only for an account (its local-only policy applies to bounces it sends too).
  enabled: (ctx) => ctx.cfg.edge.checks.sender.enabled && Boolean(ctx.input.address || ctx.session.account),
  onBackendError: { reason: 'mail.sender_unavailable', mode: (cfg) => cfg.edge.checks.sender.failureMode },
  async run(ctx) {
    const s = ctx.session;
    const c = ctx.cfg.edge.checks.sender;
    const session = sessionContext(s);
    // The answer depends on the address, the account and the client IP (an account's allowed IPs) only.
    const key = cacheKey(ctx.input.address, s.account, session.authenticatedUser, session.clientIp);
    const r = await ctx.deps.caches().senders.through(key, () =>
      ctx.deps.backends.call('auth', ctx.deps.backends.auth.resolveSender, {
        session,
        address: ctx.input.address,
        account: s.account,
      }),
    );
    ctx.tx.senderInfo = r;
    const attributes = { domain: r.domain, owner: r.ownerAccount, allowed_ip_rule: r.allowedIpRule };
    if (!ctx.input.address) return { outcome: 'pass', reason: 'mail.sender_remote' };
    if (c.ownership && s.user && !r.authenticatedUserMaySend) {
      return { outcome: 'fail', reason: 'mail.sender_not_owned', refuse: true, attributes };
    }
    if (!r.domainLocal) return { outcome: 'pass', reason: 'mail.sender_remote' };
    if (r.authorizationRequired && !s.authorized && !r.allowedIpRule) {
      const temporary = r.refusalTemporary;
      return {
        outcome: temporary ? 'defer' : 'fail',
        reason: temporary ? 'mail.local_sender_unauthorized_temp' : 'mail.local_sender_unauthorized',
        vars: { domain: r.domain, ways: failedWays(s, r, ctx.cfg.auth.popBeforeSmtp.enabled) },
        attributes,
        refuse: true,
        replyOverride: r.refusalMessage ? { text: r.refusalMessage } : undefined,
      };
    }
    if (c.unknownLocal && !s.authorized && !r.allowedIpRule && (!r.addressKnown || r.disabled)) {
      const state = r.addressKnown ? 'is disabled' : 'does not exist';
      return {
        outcome: 'fail',
        reason: 'relay.denied.sender_unknown',
        vars: { domain: r.domain, state },
        attributes,
        refuse: true,
      };
    }
    const status = !r.addressKnown ? 'unknown' : r.disabled ? 'disabled' : 'known';
    return {
      outcome: 'pass',
      reason: 'mail.sender_local',
      vars: { domain: r.domain, status, way: way(s, r) },
      attributes,
    };
  },
});
