import { reputation } from '@smtpguard/contracts';
import type { Outcome } from '@smtpguard/decisions';
import type { ReasonCode } from '@smtpguard/reasons';
import type { Verdict } from '../engine/check.js';

/**
 * A verdict of the reputation service as the edge applies it: the service owns the reason code, the action
 * (reject/defer refuse with the catalog reply, or the list's own code and text; tag accepts with header fields),
 * the values for the texts and the header fields. The edge only checks that the reason is one the check
 * declares, so a service newer than the edge cannot make it send words the catalog lacks.
 */
export function applyVerdict<R extends ReasonCode>(
  v: reputation.Verdict | undefined,
  declared: readonly R[],
  opts: {
    /** Reasons recorded with outcome error / skip / fail when the verdict does not refuse. */
    errors?: readonly R[];
    skips?: readonly R[];
    fails?: readonly R[];
    vars?: Record<string, string | number | undefined>;
  } = {},
): Verdict<R> {
  if (!v || !(declared as readonly string[]).includes(v.reasonCode)) {
    throw new Error(
      `the reputation service answered reason "${v?.reasonCode ?? ''}", which the check does not declare`,
    );
  }
  const reason = v.reasonCode as R;
  const vars = { ...v.vars, ...opts.vars };
  const base = {
    reason,
    vars,
    attributes: { ...v.vars },
    headers: v.headers.length ? [...v.headers] : undefined,
  };
  const override =
    v.replyCode || v.replyText
      ? { code: v.replyCode || undefined, text: v.replyText || undefined }
      : undefined;
  switch (v.action) {
    case reputation.ListAction.LIST_ACTION_REJECT:
      return { ...base, outcome: 'fail', refuse: true, replyOverride: override, headers: undefined };
    case reputation.ListAction.LIST_ACTION_DEFER:
      return { ...base, outcome: 'defer', refuse: true, replyOverride: override, headers: undefined };
    default: {
      const outcome: Outcome = opts.errors?.includes(reason)
        ? 'error'
        : opts.skips?.includes(reason)
          ? 'skip'
          : opts.fails?.includes(reason)
            ? 'fail'
            : 'pass';
      return { ...base, outcome };
    }
  }
}

/** True when the verdict refuses (reject or defer). */
export function refuses(v: reputation.Verdict | undefined): boolean {
  return (
    v?.action === reputation.ListAction.LIST_ACTION_REJECT ||
    v?.action === reputation.ListAction.LIST_ACTION_DEFER
  );
}
