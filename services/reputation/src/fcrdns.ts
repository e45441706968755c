import { isIP } from 'node:net';
import { plainIp } from '@smtpguard/networks';
import type { CachingResolver } from './dns/resolver.js';

// A client with more PTR names than this is checked on the first ones only.
const MAX_NAMES = 5;

/**
 * Forward-confirmed reverse DNS: the first PTR name of the IP whose A/AAAA records include the IP.
 * "" when there is none (no PTR, or no name resolves back); lookup errors count as unverified.
 */
export async function fcrdns(
  resolver: CachingResolver,
  ip: string,
): Promise<{ hostname: string; verified: boolean }> {
  const addr = plainIp(ip);
  let names: string[];
  try {
    names = (await resolver.reverse(addr)).slice(0, MAX_NAMES);
  } catch {
    return { hostname: '', verified: false };
  }
  for (const name of names) {
    try {
      const forward = isIP(addr) === 4 ? await resolver.resolve4(name) : await resolver.resolve6(name);
      if (forward.includes(addr)) return { hostname: name.toLowerCase().replace(/\.$/, ''), verified: true };
    } catch {
      // try the next name
    }
  }
  return { hostname: names[0]?.toLowerCase() ?? '', verified: false };
}
