import type { Config } from '@smtpguard/config';
import type { reputation } from '@smtpguard/contracts';
import { NetworkList } from '@smtpguard/networks';
import type { CachingResolver } from './dns/resolver.js';
import { checkLists, type ListResult } from './dnsbl.js';
import { fcrdns } from './fcrdns.js';
import type { ListHealth } from './lists/health.js';
import { ACTION_RANK, tagHeader, verdict } from './verdict.js';

type Rep = Config['reputation'];
type BlockZone = Rep['dnsbl']['zones'][number];

const REASON = { reject: 'dnsbl.listed', defer: 'dnsbl.deferred', tag: 'dnsbl.tagged' } as const;

const exemptLists = new WeakMap<string[], NetworkList>();

/** reputation.exemptClients, compiled once per config. */
export function exemptList(rules: string[]): NetworkList {
  let l = exemptLists.get(rules);
  if (!l) {
    l = new NetworkList(rules);
    exemptLists.set(rules, l);
  }
  return l;
}

export interface ClientResult {
  block: ListResult<BlockZone>;
  allow: ListResult;
  score: number;
  verdict: reputation.Verdict;
  hostname: string;
  verified: boolean;
}

/**
 * The client IP in the DNS block and allow lists, scored postscreen-style: the weights of the block lists that
 * list it plus the (negative) weights of the allow lists that list it. At dnsbl.threshold the strongest action
 * of the listing block lists applies (reject > defer > tag; the heavier list among equals gives its reply
 * text); below it, or for an exempt client, nothing is done and the listing is recorded.
 */
export async function checkClient(
  deps: { resolver: CachingResolver; health: ListHealth },
  rep: Rep,
  ip: string,
): Promise<ClientResult> {
  const [block, allow, rdns] = await Promise.all([
    checkLists(deps, rep.dnsbl.zones, ip),
    checkLists(deps, rep.dnswl.zones, ip),
    rep.fcrdns.enabled ? fcrdns(deps.resolver, ip) : Promise.resolve({ hostname: '', verified: false }),
  ]);
  const score =
    block.hits.reduce((s, h) => s + h.rules.weight, 0) + allow.hits.reduce((s, h) => s + h.rules.weight, 0);
  const base = { client: ip, rdns: rdns.hostname };
  const result = (v: reputation.Verdict): ClientResult => ({
    block,
    allow,
    score,
    verdict: v,
    hostname: rdns.hostname,
    verified: rdns.verified,
  });
  const zones = rep.dnsbl.zones.map((z) => z.zone).join(', ') || 'no zones';
  if (!block.hits.length) return result(verdict('none', 'dnsbl.clean', { ...base, zones }));
  const listedOn = block.hits.map((h) => h.zone).join(', ');
  const strongest = [...block.hits]
    .filter((h) => h.rules.weight > 0)
    .sort(
      (a, b) => ACTION_RANK[b.rules.action] - ACTION_RANK[a.rules.action] || b.rules.weight - a.rules.weight,
    )[0];
  const first = strongest ?? block.hits[0];
  const vars = {
    ...base,
    zone: first?.zone,
    zones: listedOn,
    answers: first?.answers.join(','),
    txt: first?.txt,
    score: round(score),
    threshold: rep.dnsbl.threshold,
  };
  const exempt = exemptList(rep.exemptClients).match(ip);
  if (exempt) return result(verdict('none', 'dnsbl.exempt', { ...vars, rule: exempt }));
  if (!strongest || score < rep.dnsbl.threshold)
    return result(verdict('none', 'dnsbl.below_threshold', vars));
  const action = strongest.rules.action;
  return result(
    verdict(action, REASON[action], vars, {
      replyText: strongest.rules.replyText,
      replyCode: strongest.rules.replyCode,
      headers:
        action === 'tag'
          ? [tagHeader('dnsbl', `${listedOn} (${vars.answers}); score=${vars.score}/${rep.dnsbl.threshold}`)]
          : [],
    }),
  );
}

const round = (n: number) => Math.round(n * 100) / 100;
