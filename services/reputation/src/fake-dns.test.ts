// A DNS server on UDP 127.0.0.1 for the unit tests (dns2's server): a table of records, NXDOMAIN with an SOA
// for the rest, and zones that answer SERVFAIL or nothing. Counts the questions it gets.
import DNS from 'dns2';

export interface Rec {
  A?: string[];
  AAAA?: string[];
  TXT?: string[];
  MX?: Array<[number, string]>;
  PTR?: string[];
  ttl?: number;
}

export interface FakeDns {
  address: string;
  queries: string[];
  table: Map<string, Rec>;
  silent: Set<string>;
  servfail: Set<string>;
  /** Answers for names the table lacks (wildcards). */
  dynamic?: (name: string) => Rec | undefined;
  negativeTtl: number;
  close(): Promise<void>;
}

const under = (name: string, zone: string) => name === zone || name.endsWith(`.${zone}`);

export async function fakeDns(table: Record<string, Rec> = {}): Promise<FakeDns> {
  const T = DNS.Packet.TYPE;
  const state: FakeDns = {
    address: '',
    queries: [],
    table: new Map(Object.entries(table)),
    silent: new Set(),
    servfail: new Set(),
    negativeTtl: 30,
    close: async () => undefined,
  };
  const server = DNS.createServer({
    udp: true,
    handle: (request, send) => {
      const response = DNS.Packet.createResponseFromRequest(request);
      const q = request.questions[0];
      if (!q) return;
      const name = q.name.toLowerCase();
      const type = Object.entries(T).find(([, v]) => v === q.type)?.[0] ?? String(q.type);
      state.queries.push(`${type} ${name}`);
      if ([...state.silent].some((z) => under(name, z))) return;
      if ([...state.servfail].some((z) => under(name, z))) {
        response.header.rcode = 2;
        send(response);
        return;
      }
      const rec = state.table.get(name) ?? state.dynamic?.(name);
      const ttl = rec?.ttl ?? 60;
      const base = { name: q.name, class: DNS.Packet.CLASS.IN, ttl };
      const answers = response.answers as unknown as Array<Record<string, unknown>>;
      if (rec && q.type === T.A)
        for (const a of rec.A ?? []) answers.push({ ...base, type: T.A, address: a });
      if (rec && q.type === T.AAAA)
        for (const a of rec.AAAA ?? []) answers.push({ ...base, type: T.AAAA, address: a });
      if (rec && q.type === T.TXT)
        for (const t of rec.TXT ?? []) answers.push({ ...base, type: T.TXT, data: t });
      if (rec && q.type === T.PTR)
        for (const d of rec.PTR ?? []) answers.push({ ...base, type: T.PTR, domain: d });
      if (rec && q.type === T.MX)
        for (const [priority, exchange] of rec.MX ?? [])
          answers.push({ ...base, type: T.MX, priority, exchange });
      if (!rec) response.header.rcode = 3;
      if (!answers.length) {
        (response.authorities as unknown as Array<Record<string, unknown>>).push({
          name: 'test',
          type: T.SOA,
          class: DNS.Packet.CLASS.IN,
          ttl: state.negativeTtl,
          primary: 'ns.test',
          admin: 'hostmaster.test',
          serial: 1,
          refresh: 3600,
          retry: 600,
          expiration: 86400,
          minimum: state.negativeTtl,
        });
      }
      send(response);
    },
  });
  await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  const port = (server.addresses().udp as { port: number }).port;
  state.address = `127.0.0.1:${port}`;
  state.close = () => server.close();
  return state;
}
