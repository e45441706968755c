import type { CheckContext, Phase, Verdict } from '../engine/check.js';
import { sessionContext } from '../session.js';

/**
 * Counts one message or one recipient against the session's account (auth.ConsumeSendingQuota, atomic across
 * auth replicas): a pass while within the limit, else a refusing defer (451 4.7.1) with `exceeded`. The values
 * for the texts are the counters of both limits.
 */
export async function consumeSendingQuota<
  P extends Phase,
  E extends 'quota.messages_exceeded' | 'quota.recipients_exceeded',
>(ctx: CheckContext<P>, count: 'messages' | 'recipients', exceeded: E): Promise<Verdict<'quota.ok' | E>> {
  const account = ctx.session.account;
  const r = await ctx.deps.backends.call('auth', ctx.deps.backends.auth.consumeSendingQuota, {
    session: sessionContext(ctx.session),
    account,
    messages: count === 'messages' ? 1 : 0,
    recipients: count === 'recipients' ? 1 : 0,
  });
  const vars = {
    account,
    used: r.used,
    limit: r.limit,
    recipients_used: r.recipientsUsed,
    recipient_limit: r.recipientLimit,
    resets_at: r.resetsAt?.toISOString() ?? '',
  };
  if (r.allowed) return { outcome: 'pass', reason: 'quota.ok', vars };
  return { outcome: 'defer', reason: exceeded, vars, attributes: { account }, refuse: true };
}
