import { defineCheck } from '../../engine/check.js';

/**
 * MailEnable's local-only sender policy (server, then post office, then mailbox; auth.ResolveSender's local_only
 * for the session's account): a remote recipient gets 452 4.7.1. Records a decision only when it refuses.
 */
export const localOnly = defineCheck({
  name: 'local-only',
  phase: 'rcpt',
  reasons: ['rcpt.local_only'],
  settings: ['auth.remoteSending', 'auth.domains[].remoteSending', 'auth.domains[].mailboxes[].localOnly'],
  enabled: (ctx) => Boolean(ctx.session.account) && !ctx.rcpt.local,
  run(ctx) {
    if (!ctx.tx.senderInfo?.localOnly) return undefined;
    const a = ctx.cfg.auth;
    const domain = a.domains.find((d) => ctx.session.account.endsWith(`@${d.name.toLowerCase()}`));
    const policy =
      a.remoteSending !== 'perDomain'
        ? `server ${a.remoteSending}`
        : !domain
          ? 'domain or mailbox policy' // the directory is not in this edge's config (chart: auth pods only)
          : domain.remoteSending !== 'perMailbox'
            ? `domain ${domain.remoteSending}`
            : 'mailbox localOnly';
    return {
      outcome: 'defer',
      reason: 'rcpt.local_only',
      vars: { account: ctx.session.account, policy },
      refuse: true,
    };
  },
});
