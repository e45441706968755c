import type { Config } from '@smtpguard/config';
import { reputation } from '@smtpguard/contracts';
import { spf } from 'mailauth/lib/spf/index.js';
import type { CachingResolver } from './dns/resolver.js';
import { tagHeader, verdict } from './verdict.js';

const results: Record<string, reputation.SpfResult> = {
  pass: reputation.SpfResult.SPF_RESULT_PASS,
  fail: reputation.SpfResult.SPF_RESULT_FAIL,
  softfail: reputation.SpfResult.SPF_RESULT_SOFTFAIL,
  neutral: reputation.SpfResult.SPF_RESULT_NEUTRAL,
  none: reputation.SpfResult.SPF_RESULT_NONE,
  temperror: reputation.SpfResult.SPF_RESULT_TEMPERROR,
  permerror: reputation.SpfResult.SPF_RESULT_PERMERROR,
};

export interface SpfOutcome {
  result: reputation.SpfResult;
  /** "pass", "fail", ... as RFC 7208 names it. */
  name: string;
  /** Domain the result is about: the sender's, or the HELO name for the null sender. */
  domain: string;
  /** The domain's explanation (exp=) of a fail, or the default one (RFC 7208 6.2). */
  explanation: string;
  /** What mailauth says about the evaluation (the Received-SPF comment). */
  comment: string;
  /** Received-SPF header field (RFC 7208 9.1), one line. */
  receivedSpf: string;
}

/** The explanation of a fail when the domain publishes none (RFC 7208 6.2: a locally defined one). */
export function defaultExplanation(domain: string, ip: string): string {
  return `${ip} is not one of ${domain}'s designated mail servers`;
}

/**
 * check_host() of RFC 7208 with mailauth in strict mode (it passes 199 of the 200 cases of the public RFC 7208
 * test suite; the one left is the letter case of IPv6 nibbles in an explanation), on the shared DNS cache.
 * The time limit of one evaluation is reputation.spfTimeoutMs (RFC 7208 4.6.4: temperror past it).
 */
export async function checkSpf(
  resolver: CachingResolver,
  opts: { sender: string; ip: string; helo: string; mta: string; timeoutMs: number },
): Promise<SpfOutcome> {
  const r = await spf({
    sender: opts.sender || undefined,
    ip: opts.ip,
    helo: opts.helo,
    mta: opts.mta,
    strict: true,
    maxElapsedTime: opts.timeoutMs,
    resolver: (name: string, rrtype: string) =>
      resolver.resolve(name, rrtype as 'TXT') as Promise<string[] | string[][]>,
  });
  const name = String(r.status.result);
  const domain = r.domain ?? '';
  const explanation =
    name === 'fail' ? (r.explanation ?? defaultExplanation(domain, opts.ip)) : (r.explanation ?? '');
  return {
    result: results[name] ?? reputation.SpfResult.SPF_RESULT_UNSPECIFIED,
    name,
    domain,
    explanation,
    comment: String(r.status.comment ?? ''),
    receivedSpf: String(r.header ?? '').replace(/\r?\n[ \t]*/g, ' '),
  };
}

/** What the result does (reputation.spf): the verdict the edge applies at MAIL FROM. */
export function spfVerdict(rep: Config['reputation'], out: SpfOutcome, sender: string): reputation.Verdict {
  const vars = { domain: out.domain, result: out.name, explanation: out.explanation, sender };
  const headers = rep.spf.receivedSpfHeader && out.receivedSpf ? [out.receivedSpf] : [];
  const tag = (reason: string) =>
    verdict('tag', reason, vars, {
      headers: [...headers, tagHeader('spf', `${out.name} for ${out.domain || 'no domain'}`)],
    });
  const p = rep.spf;
  switch (out.name) {
    case 'pass':
      return verdict('none', 'spf.pass', vars, { headers });
    case 'fail':
      if (p.fail === 'reject') return verdict('reject', 'spf.fail', vars, { replyCode: p.failReplyCode });
      return p.fail === 'tag' ? tag('spf.fail') : verdict('none', 'spf.fail', vars, { headers });
    case 'softfail':
      if (p.softfail === 'defer') return verdict('defer', 'spf.softfail', vars);
      return p.softfail === 'tag' ? tag('spf.softfail') : verdict('none', 'spf.softfail', vars, { headers });
    case 'temperror':
      if (p.temperror === 'defer') return verdict('defer', 'spf.temperror', vars);
      return verdict('none', 'spf.temperror', vars, { headers });
    case 'permerror':
      if (p.permerror === 'reject') return verdict('reject', 'spf.permerror', vars);
      return p.permerror === 'tag'
        ? tag('spf.permerror')
        : verdict('none', 'spf.permerror', vars, { headers });
    default:
      return verdict('none', 'spf.not_pass', vars, { headers });
  }
}
