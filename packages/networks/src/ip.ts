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
