import { reputation } from '@smtpguard/contracts';

/** What a verdict makes the edge do. */
export type Action = 'none' | 'reject' | 'defer' | 'tag';

const ACTIONS: Record<Action, reputation.ListAction> = {
  none: reputation.ListAction.LIST_ACTION_NONE,
  reject: reputation.ListAction.LIST_ACTION_REJECT,
  defer: reputation.ListAction.LIST_ACTION_DEFER,
  tag: reputation.ListAction.LIST_ACTION_TAG,
};

/** Strength of an action, for choosing among several lists' actions. */
export const ACTION_RANK: Record<Action, number> = { none: 0, tag: 1, defer: 2, reject: 3 };

/** The header field a tagging verdict adds: which check tagged the message, and why. */
export const TAG_HEADER = 'X-Smtpguard-Tag';

export function tagHeader(check: string, detail: string): string {
  return `${TAG_HEADER}: ${check}; ${detail}`;
}

/** A verdict as the edge receives it; vars without empty values. */
export function verdict(
  action: Action,
  reasonCode: string,
  vars: Record<string, string | number | undefined> = {},
  extra: { replyText?: string; replyCode?: number; headers?: string[] } = {},
): reputation.Verdict {
  const v: Record<string, string> = {};
  for (const [k, x] of Object.entries(vars)) if (x !== undefined && x !== '') v[k] = String(x);
  return reputation.Verdict.fromPartial({
    action: ACTIONS[action],
    reasonCode,
    vars: v,
    replyText: extra.replyText ?? '',
    replyCode: extra.replyCode ?? 0,
    headers: extra.headers ?? [],
  });
}
