import { BlockList, isIP } from 'node:net';
import { plainIp } from './ip.js';

/**
 * A list of client networks as administrators write them: single IPs, CIDRs (10.0.0.0/8, 2001:db8::/32),
 * dotted masks (10.0.0.0/255.0.0.0), wildcards (192.168.*.*) and ranges (192.168.0.1-50 or
 * 192.168.0.1-192.168.0.50). match() returns the entry that matched.
 */
export class NetworkList {
  private entries: Array<{ rule: string; list: BlockList }> = [];

  constructor(rules: string[]) {
    for (const raw of rules) {
      const rule = raw.trim();
      const list = new BlockList();
      const cidr = /^(.+)\/(\d{1,3})$/.exec(rule);
      const mask = /^([\d.]+)\/([\d.]+)$/.exec(rule);
      const range = /^([\d.]+)-([\d.]+)$/.exec(rule);
      const wildcard = /^(\d{1,3}|\*)(\.(\d{1,3}|\*)){3}$/.test(rule) && rule.includes('*');
      if (wildcard) {
        // 192.168.*.*: each * is any octet (only trailing octets may be wild, as in a mask).
        const octets = rule.split('.');
        const fixed = octets.indexOf('*');
        if (
          octets.slice(fixed).some((o) => o !== '*') ||
          isIP(octets.map((o) => (o === '*' ? '0' : o)).join('.')) !== 4
        )
          throw new Error(`bad wildcard "${rule}": only trailing octets may be *`);
        list.addSubnet(octets.map((o) => (o === '*' ? '0' : o)).join('.'), fixed * 8, 'ipv4');
      } else if (mask && isIP(mask[1] as string) === 4 && isIP(mask[2] as string) === 4) {
        // 192.168.0.0/255.255.255.0: a dotted mask, which must be contiguous.
        const bits = (mask[2] as string).split('.').reduce((n, o) => n * 256 + Number(o), 0);
        const prefix = 32 - Math.log2(2 ** 32 - bits);
        if (!Number.isInteger(prefix)) throw new Error(`bad mask in "${rule}": not contiguous`);
        list.addSubnet(mask[1] as string, prefix, 'ipv4');
      } else if (cidr && isIP(cidr[1] as string)) {
        const family = isIP(cidr[1] as string) === 4 ? 'ipv4' : 'ipv6';
        list.addSubnet(cidr[1] as string, Number(cidr[2]), family);
      } else if (range && isIP(range[1] as string) === 4) {
        const start = range[1] as string;
        let end = range[2] as string;
        if (isIP(end) !== 4) end = `${start.split('.').slice(0, 3).join('.')}.${end}`;
        if (isIP(end) !== 4) throw new Error(`bad address range "${rule}"`);
        list.addRange(start, end, 'ipv4');
      } else if (isIP(rule)) {
        list.addAddress(rule, isIP(rule) === 4 ? 'ipv4' : 'ipv6');
      } else {
        throw new Error(`"${rule}" is not an IP, CIDR, mask, wildcard or range`);
      }
      this.entries.push({ rule, list });
    }
  }

  match(ip: string): string | undefined {
    const addr = plainIp(ip);
    const family = isIP(addr) === 4 ? 'ipv4' : isIP(addr) === 6 ? 'ipv6' : undefined;
    if (!family) return undefined;
    return this.entries.find((e) => e.list.check(addr, family))?.rule;
  }
}
