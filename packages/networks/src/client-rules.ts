import { NetworkList } from './network-list.js';

/**
 * Client rules: everything NetworkList takes (IP, CIDR, mask, wildcard, range), plus host names
 * ("mail.example.org") and domains (".example.org", "*.example.org" or "example.org" matching any host below it). Names are matched against the
 * client's verified reverse DNS name (FCrDNS) only, never against what the client claims in HELO.
 */
export class ClientRules {
  private ips: NetworkList;
  private names: string[] = [];

  constructor(rules: string[]) {
    const ipRules: string[] = [];
    for (const raw of rules) {
      const rule = raw.trim().toLowerCase();
      if (/^[\d.:a-f/*-]+$/.test(rule) && /[\d]/.test(rule) && !/[g-z]/.test(rule)) ipRules.push(rule);
      else if (/^\*\.[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(rule)) this.names.push(rule.slice(1));
      else if (/^\.?[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(rule)) this.names.push(rule);
      else throw new Error(`"${raw}" is not an IP, CIDR, mask, wildcard, range, host name or domain`);
    }
    this.ips = new NetworkList(ipRules);
  }

  /** Whether some rules are host names or domains (matching them needs the verified reverse name). */
  get hasNames(): boolean {
    return this.names.length > 0;
  }

  /** The IP rule that matches the client, or undefined. */
  matchIp(ip: string): string | undefined {
    return this.ips.match(ip);
  }

  /** The rule that matches the client, or undefined. */
  match(ip: string, verifiedHostname = ''): string | undefined {
    return this.matchIp(ip) ?? this.matchName(verifiedHostname);
  }

  /** The host-name or domain rule that matches a verified reverse DNS name, or undefined. */
  matchName(verifiedHostname: string): string | undefined {
    const host = verifiedHostname.toLowerCase().replace(/\.$/, '');
    if (!host) return undefined;
    return this.names.find((n) =>
      n.startsWith('.') ? host.endsWith(n) : host === n || host.endsWith(`.${n}`),
    );
  }
}
