import { isIP } from 'node:net';
import { ipv6Groups, plainIp } from '@smtpguard/networks';

/**
 * Normalizes a sender so that per-message senders do not defeat greylisting (as postgrey does, and more):
 * lower case; BATV "prvs=tag=user@d" -> user@d; SRS0/SRS1 -> the original address; "+extension" dropped;
 * numbers in the local part (VERP ids, counters) -> "#".
 */
export function normalizeSender(sender: string): string {
  let s = sender.trim().toLowerCase();
  if (!s) return '<>';
  const at = s.lastIndexOf('@');
  let local = at >= 0 ? s.slice(0, at) : s;
  let domain = at >= 0 ? s.slice(at + 1) : '';
  // SRS0=hash=tt=orig-domain=orig-local ; SRS1=hash=forwarder==hash=tt=orig-domain=orig-local
  const srs = /^srs[01][=+-].*?([^=]+)=([^=]+)$/.exec(local);
  if (srs && /^srs[01]/.test(local)) {
    domain = srs[1] as string;
    local = srs[2] as string;
  }
  // BATV: prvs=tag-value=local (RFC draft), also the reversed local=tag form some senders use
  local = local.replace(/^(prvs|msprvs1|btv1)=[^=]+=/, '');
  local = local.replace(/\+.*$/, '');
  local = local.replace(/\d+/g, '#');
  s = domain ? `${local}@${domain}` : local;
  return s;
}

/** The client network of a triplet: IPv4 /ipv4Prefix, IPv6 /ipv6Prefix, as "addr/len". */
export function clientNetwork(ip: string, ipv4Prefix: number, ipv6Prefix: number): string {
  const v4 = plainIp(ip);
  if (isIP(v4) === 4) {
    const n = v4.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
    const mask = ipv4Prefix === 0 ? 0 : (0xffffffff << (32 - ipv4Prefix)) >>> 0;
    const m = (n & mask) >>> 0;
    return `${[m >>> 24, (m >>> 16) & 255, (m >>> 8) & 255, m & 255].join('.')}/${ipv4Prefix}`;
  }
  if (isIP(v4) === 6) {
    let bits = ipv6Groups(v4)
      .map((g) => Number.parseInt(g, 16).toString(2).padStart(16, '0'))
      .join('');
    bits = bits.slice(0, ipv6Prefix).padEnd(128, '0');
    const out: string[] = [];
    for (let i = 0; i < 128; i += 16) out.push(Number.parseInt(bits.slice(i, i + 16), 2).toString(16));
    return `${out.join(':')}/${ipv6Prefix}`;
  }
  return ip;
}

export function tripletKey(client: string, sender: string, recipient: string): string {
  return `${client}|${sender}|${recipient.toLowerCase()}`;
}
