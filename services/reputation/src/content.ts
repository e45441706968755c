import { isIP } from 'node:net';
import type { Config } from '@smtpguard/config';
import type { reputation } from '@smtpguard/contracts';
import { LinkifyIt } from 'linkify-it';
import { getDomain } from 'tldts';
import { exemptList } from './client.js';
import { type CachingResolver, isNoData } from './dns/resolver.js';
import { type ListHit, lookupLists, reverseName } from './dnsbl.js';
import type { ListHealth } from './lists/health.js';
import { tagHeader, verdict } from './verdict.js';

type UriZone = Config['reputation']['uribl']['zones'][number];

// Links with a scheme, www. links and bare host names with a known top-level domain (the RFC 2606 test names
// included); e-mail addresses are not links.
const linkify = new LinkifyIt({ fuzzyLink: true, fuzzyEmail: false }).tlds(
  ['test', 'example', 'invalid'],
  true,
);

export interface Link {
  uri: string;
  /** Host name (lower case) or IP address of the link. */
  host: string;
}

/** Numeric and the usual named character references, so that "&#104;ttp://" links are found too. */
function decodeEntities(html: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };
  return html.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
    if (e[0] !== '#') return named[e.toLowerCase()] ?? m;
    const n = e[1] === 'x' || e[1] === 'X' ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1));
    return n > 0 && n < 0x110000 ? String.fromCodePoint(n) : m;
  });
}

/** The distinct links of a text (HTML: after its character references are decoded), in order. */
export function extractLinks(text: string, html: boolean): Link[] {
  const source = html ? decodeEntities(text) : text;
  const seen = new Set<string>();
  const out: Link[] = [];
  for (const m of linkify.match(source) ?? []) {
    let host: string;
    try {
      host = new URL(m.url).hostname.toLowerCase();
    } catch {
      continue;
    }
    host = host.replace(/^\[|\]$/g, '').replace(/\.$/, '');
    if (!host || seen.has(host)) continue;
    seen.add(host);
    out.push({ uri: m.url, host });
  }
  return out;
}

export interface ContentResult {
  links: number;
  lookups: number;
  hits: Array<{ uri: string; host: string; hit: ListHit & { rules: UriZone } }>;
  failedZones: string[];
  verdict: reputation.Verdict;
}

/**
 * URI block lists on the links of a message's text (MailEnable's URL blacklist, hMailServer's SURBL): the
 * registered domain of each link host is looked up in the domain lists (uribl.zones, SURBL/URIBL style, answer
 * bitmasks), links to IP literals and the addresses the link hosts resolve to in the IP lists (uribl.ipZones).
 * At most uribl.maxLookups DNS lookups per message. The first listing with the strongest action decides:
 * reject (554 5.7.1, or the list's own code and text, e.g. MailEnable's 500) or tag.
 */
export async function checkContent(
  deps: { resolver: CachingResolver; health: ListHealth },
  rep: Config['reputation'],
  req: { text: string; html: boolean; clientIp: string },
): Promise<ContentResult> {
  const u = rep.uribl;
  const links = extractLinks(req.text, req.html);
  const hits: ContentResult['hits'] = [];
  const failed = new Set<string>();
  let lookups = 0;
  const budget = (n: number) => {
    if (lookups + n > u.maxLookups) return false;
    lookups += n;
    return true;
  };
  const record = (uri: string, host: string, r: Awaited<ReturnType<typeof lookupLists<UriZone>>>) => {
    for (const z of r.failedZones) failed.add(z);
    for (const h of r.hits) hits.push({ uri, host, hit: h });
  };
  const domainsSeen = new Set<string>();
  const ipsSeen = new Set<string>();
  const checkIp = async (uri: string, host: string, ip: string) => {
    if (ipsSeen.has(ip) || !u.ipZones.length || !budget(u.ipZones.length)) return;
    ipsSeen.add(ip);
    record(uri, host, await lookupLists(deps, u.ipZones, reverseName(ip), 'ip'));
  };
  for (const link of links) {
    if (isIP(link.host)) {
      await checkIp(link.uri, link.host, link.host);
      continue;
    }
    const domain = getDomain(link.host) ?? link.host;
    if (!domainsSeen.has(domain) && u.zones.length && budget(u.zones.length)) {
      domainsSeen.add(domain);
      record(link.uri, link.host, await lookupLists(deps, u.zones, domain, 'domain'));
    }
    if (u.ipZones.length && budget(1)) {
      let addresses: string[] = [];
      try {
        addresses = await deps.resolver.resolve4(link.host);
      } catch (err) {
        if (!isNoData(err)) failed.add(`A ${link.host}`);
      }
      for (const ip of addresses) await checkIp(link.uri, link.host, ip);
    }
  }
  const base = { links: links.length, lookups };
  const result = (v: reputation.Verdict): ContentResult => ({
    links: links.length,
    lookups,
    hits,
    failedZones: [...failed],
    verdict: v,
  });
  const rank = (z: UriZone) => (z.action === 'reject' ? 1 : 0);
  const first = [...hits].sort((a, b) => rank(b.hit.rules) - rank(a.hit.rules))[0];
  if (!first) return result(verdict('none', 'uribl.clean', base));
  const zone = first.hit.rules;
  const vars = {
    ...base,
    zone: first.hit.zone,
    host: first.host,
    uri: first.uri.slice(0, 200),
    answers: first.hit.answers.join(','),
    listed: hits.length,
  };
  const exempt = exemptList(rep.exemptClients).match(req.clientIp);
  if (exempt) return result(verdict('none', 'uribl.exempt', { ...vars, rule: exempt }));
  if (zone.action === 'tag') {
    const headers = [tagHeader('uribl', `${first.host} listed on ${first.hit.zone} (${vars.answers})`)];
    return result(verdict('tag', 'uribl.tagged', vars, { headers }));
  }
  return result(
    verdict('reject', 'uribl.listed', vars, { replyText: zone.replyText, replyCode: zone.replyCode }),
  );
}
