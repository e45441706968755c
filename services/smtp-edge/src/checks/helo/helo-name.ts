import { isIPv4, isIPv6 } from 'node:net';

/** What a HELO/EHLO argument is, per RFC 5321 4.1.1.1 (Domain / address-literal). */
export type HeloName =
  | { kind: 'domain'; name: string; fqdn: boolean }
  | { kind: 'literal'; ip: string }
  | { kind: 'invalid' };

// A label: letters, digits, hyphens inside; underscores too, which Windows host names carry in practice.
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i;

export function parseHeloName(arg: string): HeloName {
  if (!arg) return { kind: 'invalid' };
  const literal = /^\[(.+)\]$/.exec(arg);
  if (literal) {
    const inner = literal[1] as string;
    if (isIPv4(inner)) return { kind: 'literal', ip: inner };
    const v6 = /^ipv6:(.+)$/i.exec(inner);
    if (v6 && isIPv6(v6[1] as string)) return { kind: 'literal', ip: (v6[1] as string).toLowerCase() };
    return { kind: 'invalid' };
  }
  // Clients often send a bare IPv4 address; it is taken as the literal it means.
  if (isIPv4(arg)) return { kind: 'literal', ip: arg };
  const name = arg.endsWith('.') ? arg.slice(0, -1) : arg;
  if (name.length === 0 || name.length > 253) return { kind: 'invalid' };
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) return { kind: 'invalid' };
  const tld = labels[labels.length - 1] as string;
  return { kind: 'domain', name: name.toLowerCase(), fqdn: labels.length > 1 && !/^\d+$/.test(tld) };
}
