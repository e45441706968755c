import { createSocket } from 'node:dgram';
import * as dnsPacket from 'dns-packet';

export interface ZoneRecords {
  A?: string[];
  TXT?: string[];
  PTR?: string[];
}

export interface DnsServer {
  /** "127.0.0.1:port", as reputation.dns.servers takes it. */
  address: string;
  queries: string[];
  close(): Promise<void>;
}

/**
 * A real DNS server on UDP 127.0.0.1 serving test zones: names not in `records` get NXDOMAIN,
 * names in `servfail` get SERVFAIL (a broken list).
 */
export async function startDnsServer(
  records: Record<string, ZoneRecords>,
  servfail: string[] = [],
): Promise<DnsServer> {
  const sock = createSocket('udp4');
  const queries: string[] = [];
  const table = new Map(Object.entries(records).map(([k, v]) => [k.toLowerCase(), v]));
  sock.on('message', (msg, rinfo) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const q = query.questions?.[0];
    if (!q) return;
    const name = q.name.toLowerCase();
    queries.push(`${q.type} ${name}`);
    const rec = table.get(name);
    const answers: dnsPacket.Answer[] = [];
    if (rec && q.type === 'A')
      for (const ip of rec.A ?? []) answers.push({ type: 'A', name: q.name, ttl: 60, data: ip });
    if (rec && q.type === 'PTR')
      for (const n of rec.PTR ?? []) answers.push({ type: 'PTR', name: q.name, ttl: 60, data: n });
    if (rec && q.type === 'TXT')
      for (const t of rec.TXT ?? []) answers.push({ type: 'TXT', name: q.name, ttl: 60, data: t });
    const rcode = servfail.some((z) => name.endsWith(z)) ? 2 : rec ? 0 : 3;
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
      questions: query.questions,
      answers: rcode ? [] : answers,
    });
    sock.send(response, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${sock.address().port}`,
    queries,
    close: () => new Promise((resolve) => sock.close(() => resolve())),
  };
}
