import type { Resolver } from 'node:dns/promises';
import { reputation } from '@smtpguard/contracts';
import { spf } from 'mailauth/lib/spf/index.js';

const results: Record<string, reputation.SpfResult> = {
  pass: reputation.SpfResult.SPF_RESULT_PASS,
  fail: reputation.SpfResult.SPF_RESULT_FAIL,
  softfail: reputation.SpfResult.SPF_RESULT_SOFTFAIL,
  neutral: reputation.SpfResult.SPF_RESULT_NEUTRAL,
  none: reputation.SpfResult.SPF_RESULT_NONE,
  temperror: reputation.SpfResult.SPF_RESULT_TEMPERROR,
  temperr: reputation.SpfResult.SPF_RESULT_TEMPERROR,
  permerror: reputation.SpfResult.SPF_RESULT_PERMERROR,
};

export interface SpfOutcome {
  result: reputation.SpfResult;
  /** Domain the result is about: the sender's, or the HELO name for the null sender. */
  domain: string;
  explanation: string;
}

/** SPF (RFC 7208) with mailauth, on the configured resolver. */
export async function checkSpf(
  resolver: Resolver,
  opts: { sender: string; ip: string; helo: string; mta: string; timeoutMs: number },
): Promise<SpfOutcome> {
  const r = await spf({
    sender: opts.sender || undefined,
    ip: opts.ip,
    helo: opts.helo,
    mta: opts.mta,
    maxElapsedTime: opts.timeoutMs,
    resolver: (name: string, rrtype: string) =>
      resolver.resolve(name, rrtype) as Promise<string[] | string[][]>,
  });
  return {
    result: results[r.status.result] ?? reputation.SpfResult.SPF_RESULT_UNSPECIFIED,
    domain: r.domain ?? '',
    explanation: r.explanation ?? '',
  };
}
