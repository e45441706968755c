import { isIP } from 'node:net';

/** IPv4-mapped IPv6 (as dual-stack listeners report IPv4 clients) as plain IPv4; anything else unchanged. */
export function plainIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** The eight 16-bit groups of an IPv6 address, "::" expanded, each as written (hex, no padding). */
export function ipv6Groups(ip: string): string[] {
  if (!ip.includes('::')) return ip.split(':');
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  return [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
}

/**
 * One spelling per address, for comparing and keying: IPv4 as dotted quad; an IPv4-mapped IPv6 address
 * (::ffff:192.0.2.7 or ::ffff:c000:207) as the IPv4 it maps; any other IPv6 as its eight groups in lower-case
 * hex without leading zeros (a dotted IPv4 tail converted). Undefined when it is not an IP address.
 */
export function canonicalIp(ip: string): string | undefined {
  const v = isIP(ip);
  if (v === 4) return ip.split('.').map(Number).join('.');
  if (v !== 6) return undefined;
  let text = ip.toLowerCase();
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const [a = 0, b = 0, c = 0, d = 0] = (tail[1] as string).split('.').map(Number);
    text = `${text.slice(0, -(tail[1] as string).length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const groups = ipv6Groups(text).map((g) => Number.parseInt(g || '0', 16));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join('.');
  }
  return groups.map((g) => g.toString(16)).join(':');
}
