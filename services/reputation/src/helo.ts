import { isIP } from 'node:net';
import type { Config } from '@smtpguard/config';
import type { reputation } from '@smtpguard/contracts';
import { canonicalIp, plainIp } from '@smtpguard/networks';
import { type CachingResolver, isNoData } from './dns/resolver.js';
import { tagHeader, verdict } from './verdict.js';

export interface HeloResult {
  addresses: string[];
  matches: boolean;
  verdict: reputation.Verdict;
}

/**
 * hMailServer's "Check host in the HELO command": the HELO/EHLO name must resolve (A or AAAA, per the client's
 * address family) to the client's address. A name that does not exist, or resolves elsewhere, is a mismatch:
 * refused (550 5.7.1) or tagged (reputation.helo.action). Address literals are the edge's helo-literal check;
 * DNS failures are recorded (helo.host_error), never refused.
 */
export async function checkHelo(
  resolver: CachingResolver,
  rep: Config['reputation'],
  ip: string,
  helo: string,
): Promise<HeloResult> {
  const name = helo.trim().replace(/\.$/, '').toLowerCase();
  const client = plainIp(ip);
  const vars = { helo: name, client };
  if (!name || name.startsWith('[') || isIP(name)) {
    return { addresses: [], matches: true, verdict: verdict('none', 'helo.host_skipped', vars) };
  }
  let addresses: string[] = [];
  try {
    addresses = isIP(client) === 6 ? await resolver.resolve6(name) : await resolver.resolve4(name);
  } catch (err) {
    if (!isNoData(err)) {
      const error = (err as { code?: string }).code ?? String(err);
      return { addresses, matches: false, verdict: verdict('none', 'helo.host_error', { ...vars, error }) };
    }
  }
  const want = canonicalIp(client);
  if (addresses.some((a) => canonicalIp(a) === want)) {
    return { addresses, matches: true, verdict: verdict('none', 'helo.host_match', vars) };
  }
  const found = addresses.length ? addresses.join(', ') : 'no address';
  const mismatch = { ...vars, addresses: found };
  if (rep.helo.action === 'tag') {
    const headers = [tagHeader('helo', `${name} resolves to ${found}, not ${client}`)];
    return { addresses, matches: false, verdict: verdict('tag', 'helo.host_tagged', mismatch, { headers }) };
  }
  return { addresses, matches: false, verdict: verdict('reject', 'helo.host_mismatch', mismatch) };
}
