import type { Readable } from 'node:stream';
import type { Config } from '@smtpguard/config';
import type { reputation } from '@smtpguard/contracts';
import { authenticate } from 'mailauth';
import type { CachingResolver } from './dns/resolver.js';
import { tagHeader, verdict } from './verdict.js';

export interface MessageAuthResult {
  authenticationResults: string;
  dkim: string;
  spf: string;
  arc: string;
  dmarc: string;
  dmarcPolicy: string;
  verdict: reputation.Verdict;
}

/**
 * DKIM (RFC 6376), ARC (RFC 8617) and DMARC (RFC 7489) of a message as received, with mailauth in strict mode
 * on the shared DNS cache; SPF is evaluated again from the cache for DMARC alignment. The result is the
 * Authentication-Results header field (RFC 8601) the edge adds to the message, and the DMARC policy of a
 * failing message applied per reputation.dmarc: p=reject refused (550 5.7.1), tagged or recorded;
 * p=quarantine tagged or recorded.
 */
export async function verifyMessage(
  resolver: CachingResolver,
  rep: Config['reputation'],
  input: Readable,
  session: { ip: string; helo: string; sender: string; mta: string },
): Promise<MessageAuthResult> {
  const r = await authenticate(input, {
    ip: session.ip,
    helo: session.helo || undefined,
    sender: session.sender || undefined,
    mta: session.mta,
    strict: true,
    disableBimi: true,
    resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype as 'TXT'),
  });
  const headers = r.headers
    .split(/\r?\n(?![ \t])/)
    .filter((h: string) => /^authentication-results:/i.test(h));
  const ar = (headers[0] ?? '').replace(/\r?\n[ \t]*/g, ' ').trim();
  const dkimResults = (r.dkim?.results ?? []) as Array<{
    status?: { result?: string };
    signingDomain?: string;
  }>;
  const dkim = dkimResults.find((d) => d.status?.result === 'pass') ?? dkimResults[0];
  const dmarc = r.dmarc ? String(r.dmarc.status?.result ?? 'none') : 'none';
  const policy = r.dmarc && dmarc === 'fail' ? String(r.dmarc.policy ?? 'none') : '';
  const from = r.dmarc ? String(r.dmarc.status?.header?.from ?? r.dmarc.domain ?? '') : '';
  const out = {
    authenticationResults: ar,
    dkim: dkim?.status?.result ?? 'none',
    spf: r.spf ? String(r.spf.status?.result ?? 'none') : 'none',
    arc: r.arc ? String(r.arc.status?.result ?? 'none') : 'none',
    dmarc,
    dmarcPolicy: policy,
  };
  const vars = {
    dkim: out.dkim,
    dkim_domain: dkim?.signingDomain,
    spf: out.spf,
    arc: out.arc,
    dmarc,
    policy,
    domain: from,
  };
  const headersOut = ar ? [ar] : [];
  const tag = (reason: string) =>
    verdict('tag', reason, vars, {
      headers: [...headersOut, tagHeader('dmarc', `${from} fails DMARC (p=${policy})`)],
    });
  let v: reputation.Verdict;
  if (dmarc === 'pass') v = verdict('none', 'dmarc.pass', vars, { headers: headersOut });
  else if (dmarc !== 'fail') v = verdict('none', 'dmarc.none', vars, { headers: headersOut });
  else if (policy === 'reject' && rep.dmarc.reject === 'reject') v = verdict('reject', 'dmarc.reject', vars);
  else if (
    (policy === 'reject' && rep.dmarc.reject === 'tag') ||
    (policy === 'quarantine' && rep.dmarc.quarantine === 'tag')
  )
    v = tag('dmarc.quarantine');
  else v = verdict('none', 'dmarc.fail', vars, { headers: headersOut });
  return { ...out, verdict: v };
}
