import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Config } from '@smtpguard/config';
import { plainIp } from '@smtpguard/networks';

const ANY = new Set(['0.0.0.0', '::', '']);

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) out.add(plainIp(a.address));
  return out;
}

/**
 * A next hop that is one of the edge's own listeners would loop every message back into the edge. Returns the
 * problem (naming the key), or undefined. Host names are resolved; an address is the edge's when it is on a
 * local interface or loopback and a listener binds it (or binds every address) on the next hop's port.
 */
export async function nextHopLoop(cfg: Config): Promise<string | undefined> {
  const hop = cfg.edge.nextHop;
  if (hop.type === 'spool') return undefined;
  let addresses: string[];
  try {
    addresses = isIP(hop.host) ? [hop.host] : (await lookup(hop.host, { all: true })).map((a) => a.address);
  } catch {
    return undefined; // unresolvable now: delivery will fail with 451 and say so
  }
  const local = localAddresses();
  for (const [name, l] of Object.entries(cfg.edge.listeners)) {
    if (!l.enabled || l.port !== hop.port) continue;
    for (const raw of addresses) {
      const a = plainIp(raw);
      const mine = isLoopback(a) || local.has(a);
      const bound = ANY.has(l.host) || plainIp(l.host) === a || (l.host === 'localhost' && isLoopback(a));
      if (mine && bound) {
        return `edge.nextHop: ${hop.host}:${hop.port} is the edge's own ${name} listener (${l.host}:${l.port}); mail would loop`;
      }
    }
  }
  return undefined;
}
