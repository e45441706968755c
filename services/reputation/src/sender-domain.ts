import type { Config } from '@smtpguard/config';
import type { reputation } from '@smtpguard/contracts';
import { type CachingResolver, isNoData } from './dns/resolver.js';
import { verdict } from './verdict.js';

export interface SenderDomainResult {
  domain: string;
  mailHosts: string[];
  nullMx: boolean;
  verdict: reputation.Verdict;
}

const code = (err: unknown) => (err as { code?: string }).code ?? String(err);

/**
 * Whether the MAIL FROM domain can receive mail (bounces go there): its MX hosts, or — without MX — the domain
 * itself when it has an A or AAAA record (RFC 5321 5.1). A null MX ("MX 0 .", RFC 7505) means it accepts no
 * mail. A domain that does not exist or cannot receive mail is refused (550 5.1.8, or 501 as MailEnable does:
 * reputation.senderDomain.replyCode); a DNS failure is a temporary error (451 4.4.3), never a refusal.
 */
export async function checkSenderDomain(
  resolver: CachingResolver,
  rep: Config['reputation'],
  sender: string,
): Promise<SenderDomainResult> {
  const domain = (sender.split('@').pop() ?? '').toLowerCase().replace(/\.$/, '');
  const out = (v: reputation.Verdict, mailHosts: string[] = [], nullMx = false): SenderDomainResult => ({
    domain,
    mailHosts,
    nullMx,
    verdict: v,
  });
  const vars = { domain };
  if (!sender || !domain) return out(verdict('none', 'sender.domain_skipped', vars));
  if (domain.startsWith('[')) return out(verdict('none', 'sender.domain_skipped', vars));
  const refuse = (reason: string, extra: Record<string, string> = {}) =>
    verdict('reject', reason, { ...vars, ...extra }, { replyCode: rep.senderDomain.replyCode });
  let mx: Array<{ exchange: string; priority: number }> = [];
  try {
    mx = await resolver.resolveMx(domain);
  } catch (err) {
    if (code(err) === 'ENOTFOUND') return out(refuse('sender.domain_not_found'));
    if (!isNoData(err)) return out(verdict('defer', 'sender.domain_error', { ...vars, error: code(err) }));
  }
  if (mx.length) {
    // RFC 7505 3: a null MX is the only MX, with an empty exchange ("."), and means "no mail".
    if (mx.some((m) => m.exchange === '' || m.exchange === '.')) {
      return out(refuse('sender.null_mx'), [], true);
    }
    const hosts = [...mx].sort((a, b) => a.priority - b.priority).map((m) => m.exchange.toLowerCase());
    return out(verdict('none', 'sender.domain_ok', { ...vars, hosts: hosts.join(', ') }), hosts);
  }
  // No MX: the domain itself is the mail host if it has an address (RFC 5321 5.1 implicit MX).
  const results = await Promise.allSettled([resolver.resolve4(domain), resolver.resolve6(domain)]);
  if (results.some((r) => r.status === 'fulfilled' && r.value.length)) {
    return out(verdict('none', 'sender.domain_ok', { ...vars, hosts: `${domain} (no MX, address)` }), [
      domain,
    ]);
  }
  const failure = results.find((r) => r.status === 'rejected' && !isNoData(r.reason));
  if (failure && failure.status === 'rejected') {
    return out(verdict('defer', 'sender.domain_error', { ...vars, error: code(failure.reason) }));
  }
  return out(refuse('sender.no_mx'));
}
