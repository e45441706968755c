import { auth } from '@smtpguard/contracts';
import { BackendError } from '@smtpguard/grpc-kit';
import { isReasonCode } from '@smtpguard/reasons';
import { cacheKey } from '../../cache/lookups.js';
import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';

const S = auth.RecipientStatus;
const REFUSALS = [
  'rcpt.unknown_user',
  'rcpt.mailbox_disabled',
  'rcpt.domain_disabled',
  'rcpt.routing_loop',
  'rcpt.alias_disabled',
  'rcpt.list_disabled',
  'rcpt.list_not_authorized',
  'rcpt.sender_blocked',
  'rcpt.not_in_route_list',
] as const;
type Refusal = (typeof REFUSALS)[number];
const isRefusal = (code: string): code is Refusal =>
  isReasonCode(code) && (REFUSALS as readonly string[]).includes(code);

/**
 * The directory (auth.ResolveRecipient): local recipients pass, unknown or disabled ones are refused, and a
 * recipient outside the local domains goes on to the relay decision. When the auth service cannot answer,
 * fail-open accepts only for authorized clients: for anyone else the recipient might be remote, and accepting
 * it would make an open relay.
 */
export const recipient = defineCheck({
  name: 'recipient',
  phase: 'rcpt',
  reasons: [
    'rcpt.local',
    'rcpt.catch_all',
    'rcpt.route',
    'rcpt.not_local',
    ...REFUSALS,
    'rcpt.lookup_unavailable',
  ],
  settings: ['auth.domains', 'auth.relayDomains', 'edge.checks.recipient.failureMode'],
  async run(ctx) {
    let r: auth.ResolveRecipientResponse;
    try {
      const session = sessionContext(ctx.session);
      // The answer depends on the address, the sender (lists, blocked sender domains) and the account only.
      const key = cacheKey(ctx.rcpt.address, session.sender, ctx.session.account, session.authenticatedUser);
      r = await ctx.deps.caches().recipients.through(key, () =>
        ctx.deps.backends.call('auth', ctx.deps.backends.auth.resolveRecipient, {
          session,
          address: ctx.rcpt.address,
          account: ctx.session.account,
        }),
      );
    } catch (err) {
      if (!(err instanceof BackendError)) throw err;
      const mode = ctx.cfg.edge.checks.recipient.failureMode;
      const accept = mode === 'fail-open' && ctx.session.authorized;
      if (accept) ctx.rcpt.local = true;
      return {
        outcome: 'error',
        reason: 'rcpt.lookup_unavailable',
        vars: { error: err.message },
        attributes: { error: err.message, failure_mode: mode },
        refuse: !accept,
      };
    }
    const list = ctx.cfg.auth.domains.find((d) => d.name.toLowerCase() === r.domain)?.lists[
      ctx.rcpt.address.toLowerCase().split('@')[0] ?? ''
    ];
    const vars = {
      domain: r.domain,
      target: r.deliveryAddresses.join(', '),
      account: ctx.session.account || 'none',
      post: list?.post,
    };
    switch (r.status) {
      case S.RECIPIENT_STATUS_MAILBOX:
      case S.RECIPIENT_STATUS_ALIAS:
      case S.RECIPIENT_STATUS_LIST: {
        ctx.rcpt.local = true;
        const kind = auth.recipientStatusToJSON(r.status).replace('RECIPIENT_STATUS_', '').toLowerCase();
        return { outcome: 'pass', reason: 'rcpt.local', vars: { ...vars, kind } };
      }
      case S.RECIPIENT_STATUS_CATCH_ALL:
        ctx.rcpt.local = true;
        return { outcome: 'pass', reason: 'rcpt.catch_all', vars };
      case S.RECIPIENT_STATUS_ROUTE:
        // A relay domain (backup MX): taken for without relay authorization.
        ctx.rcpt.local = true;
        return { outcome: 'pass', reason: 'rcpt.route', vars };
      case S.RECIPIENT_STATUS_NOT_LOCAL:
        return { outcome: 'skip', reason: 'rcpt.not_local', vars };
      default: {
        const reason = isRefusal(r.reasonCode) ? r.reasonCode : 'rcpt.unknown_user';
        return { outcome: 'fail', reason, vars, refuse: true };
      }
    }
  },
});
