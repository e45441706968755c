import type { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Config } from '@smtpguard/config';
import { ipv6Groups, plainIp } from '@smtpguard/networks';
import { isNoData } from './dns.js';

export interface ListHit {
  zone: string;
  answers: string[];
  txt: string;
}

export interface ListResult {
  hits: ListHit[];
  failedZones: string[];
}

type Zone = Config['reputation']['dnsbl']['zones'][number];

/** The DNS list query name of an IP: reversed octets (IPv4) or reversed nibbles (IPv6), RFC 5782. */
export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return ip.split('.').reverse().join('.');
  if (isIP(ip) === 6) {
    return ipv6Groups(ip)
      .map((g) => g.padStart(4, '0'))
      .join('')
      .split('')
      .reverse()
      .join('.');
  }
  throw new Error(`not an IP address: ${ip}`);
}

/** An answer counts when it is in 127.0.0.0/8 (RFC 5782) and, if the zone names answers, one of them. */
function counts(zone: Zone, answer: string): boolean {
  if (zone.answers.length) return zone.answers.includes(answer);
  return answer.startsWith('127.') && answer !== '127.0.0.1';
}

/**
 * Looks the IP up in every zone of a block or allow list, in parallel. A zone that fails (timeout,
 * SERVFAIL) is reported in failedZones, never treated as a listing.
 */
export async function checkLists(resolver: Resolver, zones: Zone[], ip: string): Promise<ListResult> {
  const name = reverseName(plainIp(ip));
  const results = await Promise.all(
    zones.map(async (zone): Promise<ListHit | 'clean' | 'failed'> => {
      const q = `${name}.${zone.zone}`;
      try {
        const answers = (await resolver.resolve4(q)).filter((a) => counts(zone, a));
        if (!answers.length) return 'clean';
        const txt = await resolver.resolveTxt(q).then(
          (r) => r.map((parts) => parts.join('')).join(' '),
          () => '',
        );
        return { zone: zone.zone, answers, txt };
      } catch (err) {
        return isNoData(err) ? 'clean' : 'failed';
      }
    }),
  );
  const hits: ListHit[] = [];
  const failedZones: string[] = [];
  results.forEach((r, i) => {
    if (r === 'failed') failedZones.push((zones[i] as Zone).zone);
    else if (r !== 'clean') hits.push(r);
  });
  return { hits, failedZones };
}
