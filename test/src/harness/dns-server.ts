import { createSocket } from 'node:dgram';
import * as dnsPacket from 'dns-packet';

export interface ZoneRecords {
  A?: string[];
  AAAA?: string[];
  /** One string a record; a longer one is split into 255-octet character-strings. */
  TXT?: string[];
  PTR?: string[];
  /** "10 mx.example.test"; "0 ." is a null MX (RFC 7505). */
  MX?: string[];
  /** TTL of this name's answers (default: the server's ttl). */
  ttl?: number;
}

export interface DnsServerOptions {
  /** TTL of answers (default 60). */
  ttl?: number;
  /** Negative answers carry an SOA in the authority section with this TTL/minimum (RFC 2308); default 60. */
  negativeTtl?: number;
  /** Zones whose names are never answered (a list that times out); can be changed while running. */
  silent?: string[];
  /** Answers computed per question (wildcards, names derived from addresses); a table entry wins. */
  dynamic?: (name: string) => ZoneRecords | undefined;
}

export interface DnsServer {
  /** "127.0.0.1:port", as reputation.dns.servers takes it. */
  address: string;
  /** "TYPE name" of every question, in arrival order. */
  queries: string[];
  /** The table (lower-case names); tests may change it while the server runs. */
  records: Map<string, ZoneRecords>;
  /** Zones that are never answered; tests may change it while the server runs. */
  silent: Set<string>;
  /** Zones answered with SERVFAIL. */
  servfail: Set<string>;
  close(): Promise<void>;
}

const under = (name: string, zone: string) => name === zone || name.endsWith(`.${zone}`);

/**
 * A real DNS server on UDP 127.0.0.1 serving test zones: names not in `records` get NXDOMAIN (with an SOA, so
 * resolvers can cache the negative answer), names under a `servfail` zone get SERVFAIL (a broken list), names
 * under a `silent` zone get no answer at all (a list that times out). `dynamic` answers names the table lacks
 * (e.g. a wildcard list that answers everything).
 */
export async function startDnsServer(
  table: Record<string, ZoneRecords>,
  servfail: string[] = [],
  opts: DnsServerOptions = {},
): Promise<DnsServer> {
  const sock = createSocket('udp4');
  const queries: string[] = [];
  const records = new Map(Object.entries(table).map(([k, v]) => [k.toLowerCase(), v]));
  const silent = new Set((opts.silent ?? []).map((z) => z.toLowerCase()));
  const failing = new Set(servfail.map((z) => z.toLowerCase()));
  const ttl = opts.ttl ?? 60;
  const negativeTtl = opts.negativeTtl ?? 60;
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
    if ([...silent].some((z) => under(name, z))) return;
    const rec = records.get(name) ?? opts.dynamic?.(name);
    const t = rec?.ttl ?? ttl;
    const answers: dnsPacket.Answer[] = [];
    if (rec && q.type === 'A')
      for (const ip of rec.A ?? []) answers.push({ type: 'A', name: q.name, ttl: t, data: ip });
    if (rec && q.type === 'AAAA')
      for (const ip of rec.AAAA ?? []) answers.push({ type: 'AAAA', name: q.name, ttl: t, data: ip });
    if (rec && q.type === 'PTR')
      for (const n of rec.PTR ?? []) answers.push({ type: 'PTR', name: q.name, ttl: t, data: n });
    if (rec && q.type === 'TXT')
      for (const text of rec.TXT ?? []) {
        const parts: string[] = [];
        for (let i = 0; i < text.length || i === 0; i += 255) parts.push(text.slice(i, i + 255));
        answers.push({ type: 'TXT', name: q.name, ttl: t, data: parts });
      }
    if (rec && q.type === 'MX')
      for (const mx of rec.MX ?? []) {
        const [pref, exchange = '.'] = mx.split(/\s+/);
        answers.push({
          type: 'MX',
          name: q.name,
          ttl: t,
          data: { preference: Number(pref), exchange: exchange === '.' ? '' : exchange },
        });
      }
    const rcode = [...failing].some((z) => under(name, z)) ? 2 : rec ? 0 : 3;
    const soa: dnsPacket.Answer = {
      type: 'SOA',
      name: name.split('.').slice(-1)[0] ?? '',
      ttl: negativeTtl,
      data: {
        mname: 'ns.test',
        rname: 'hostmaster.test',
        serial: 1,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: negativeTtl,
      },
    };
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
      questions: query.questions,
      answers: rcode ? [] : answers,
      authorities: rcode === 3 || (rcode === 0 && !answers.length) ? [soa] : [],
    });
    sock.send(response, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${sock.address().port}`,
    queries,
    records,
    silent,
    servfail: failing,
    close: () => new Promise((resolve) => sock.close(() => resolve())),
  };
}
