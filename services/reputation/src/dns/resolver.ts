import { getServers } from 'node:dns';
import { isIP } from 'node:net';
import type { Config } from '@smtpguard/config';
import { ipv6Groups } from '@smtpguard/networks';
import { smtpMetrics } from '@smtpguard/telemetry';
import DNS from 'dns2';
import { LRUCache } from 'lru-cache';

/** The record types the reputation checks ask for, in the shapes node:dns (and mailauth) use. */
export interface Records {
  A: string[];
  AAAA: string[];
  TXT: string[][];
  MX: { exchange: string; priority: number }[];
  PTR: string[];
  CNAME: string[];
  NS: string[];
}
export type RecordType = keyof Records;

/** node:dns-style error codes, which mailauth and the checks tell apart. */
export type DnsErrorCode = 'ENOTFOUND' | 'ENODATA' | 'ETIMEOUT' | 'ESERVFAIL' | 'EREFUSED' | 'EBADRESP';

export class DnsError extends Error {
  constructor(
    readonly code: DnsErrorCode,
    readonly hostname: string,
    readonly rrtype: string,
  ) {
    super(`${rrtype} ${hostname}: ${code}`);
    this.name = 'DnsError';
  }
}

/**
 * A DnsError without a stack trace: "no such record" is an everyday answer (every DNS list that does not list a
 * client), thrown from the cache on every lookup; capturing a stack for it cost more than the lookup itself.
 */
function dnsError(code: DnsErrorCode, hostname: string, rrtype: string): DnsError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new DnsError(code, hostname, rrtype);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** True for answers that mean "no such record" rather than a failed lookup. */
export function isNoData(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ENOTFOUND' || code === 'ENODATA';
}

/** Counters of the cache, for logs and (later) metrics export. */
export interface DnsStats {
  /** Answers served from the cache (positive or negative). */
  hits: number;
  /** Questions that were not in the cache (and were asked). */
  misses: number;
  /** Questions answered by joining one already in flight. */
  joined: number;
  /** Queries sent to the servers (tries and servers included). */
  queries: number;
  /** Entries held now. */
  entries: number;
}

type CacheEntry = { records: unknown[] } | { error: DnsErrorCode };

const TYPE_CODE: Record<RecordType, number> = {
  A: DNS.Packet.TYPE.A,
  AAAA: DNS.Packet.TYPE.AAAA,
  TXT: DNS.Packet.TYPE.TXT,
  MX: DNS.Packet.TYPE.MX,
  PTR: DNS.Packet.TYPE.PTR,
  CNAME: DNS.Packet.TYPE.CNAME,
  NS: DNS.Packet.TYPE.NS,
};

const RCODE: Record<number, DnsErrorCode> = { 1: 'EBADRESP', 2: 'ESERVFAIL', 3: 'ENOTFOUND', 5: 'EREFUSED' };

type DnsSettings = Config['reputation']['dns'];

/** "ip", "ip:port", "[v6]:port" or a bare IPv6 address → host and port. */
function parseServer(s: string): { host: string; port: number } {
  if (isIP(s)) return { host: s, port: 53 };
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m?.[1]) throw new Error(`reputation.dns.servers: "${s}" is not "ip" or "ip:port"`);
  return { host: m[1], port: m[2] ? Number(m[2]) : 53 };
}

/**
 * The reputation service's one DNS client: UDP queries (TCP when truncated) with dns2 — a socket per query
 * (random source port), random query ids, answers only from the server asked — and a bounded cache shared by
 * every check. Answers are kept for their TTL (the smallest of the answer's records, within the configured
 * bounds); "no such name" and "no such record" answers for the SOA's negative TTL (RFC 2308), or
 * `negativeTtlSeconds` when the server sends no SOA. Failures (timeouts, SERVFAIL) are never cached.
 * Concurrent identical questions share one query.
 */
export class CachingResolver {
  private readonly cache: LRUCache<string, CacheEntry>;
  private readonly inflight = new Map<string, Promise<CacheEntry>>();
  private readonly servers: Array<(name: string, type: string) => Promise<DNS.Packet>>;
  constructor(
    private readonly settings: DnsSettings,
    /** Counters to continue (a resolver rebuilt after a config change keeps counting). */
    private readonly counters = { hits: 0, misses: 0, joined: 0, queries: 0 },
  ) {
    const list = settings.servers.length ? settings.servers : getServers();
    this.servers = list.map((s) => {
      const { host, port } = parseServer(s);
      return DNS.UDPClient({
        dns: host,
        port,
        socketType: isIP(host) === 6 ? 'udp6' : 'udp4',
        timeout: settings.timeoutMs,
      }) as (name: string, type: string) => Promise<DNS.Packet>;
    });
    this.cache = new LRUCache({ max: settings.cache.maxEntries, ttlAutopurge: false });
  }

  stats(): DnsStats {
    return { ...this.counters, entries: this.cache.size };
  }

  /** The counters, for a successor resolver to continue. */
  get counterState(): { hits: number; misses: number; joined: number; queries: number } {
    return this.counters;
  }

  /** node:dns Resolver.resolve's shape, for mailauth. */
  resolve<T extends RecordType>(name: string, type: T): Promise<Records[T]> {
    return this.query(name, type);
  }

  resolve4(name: string): Promise<string[]> {
    return this.query(name, 'A');
  }

  resolve6(name: string): Promise<string[]> {
    return this.query(name, 'AAAA');
  }

  resolveTxt(name: string): Promise<string[][]> {
    return this.query(name, 'TXT');
  }

  resolveMx(name: string): Promise<Records['MX']> {
    return this.query(name, 'MX');
  }

  /** PTR names of an IP address (reverse lookup). */
  reverse(ip: string): Promise<string[]> {
    return this.query(reverseZone(ip), 'PTR');
  }

  /** One question: from the cache, or asked (once, however many callers wait) and cached. */
  async query<T extends RecordType>(
    name: string,
    type: T,
    opts: { cache?: boolean } = {},
  ): Promise<Records[T]> {
    if (!(type in TYPE_CODE)) throw new Error(`record type ${type} is not supported`);
    const qname = name.toLowerCase().replace(/\.$/, '');
    const key = `${type} ${qname}`;
    const useCache = opts.cache !== false;
    let entry = useCache ? this.cache.get(key) : undefined;
    if (entry) this.counters.hits += 1;
    else {
      const pending = useCache ? this.inflight.get(key) : undefined;
      if (pending) {
        this.counters.joined += 1;
        entry = await pending;
      } else {
        // Questions that bypass the cache (health checks) are neither hits nor misses.
        if (useCache) this.counters.misses += 1;
        const p = this.ask(qname, type).finally(() => this.inflight.delete(key));
        if (useCache) this.inflight.set(key, p);
        entry = await p;
      }
    }
    if ('error' in entry) throw dnsError(entry.error, qname, type);
    return entry.records.slice() as Records[T];
  }

  /** Asks the servers in turn (each `tries` times) and caches what they say. */
  private async ask(qname: string, type: RecordType): Promise<CacheEntry> {
    if (!qname || qname.length > 253 || qname.split('.').some((l) => !l || l.length > 63)) {
      return { error: 'ENOTFOUND' };
    }
    let lastError: DnsErrorCode = 'ETIMEOUT';
    for (let attempt = 0; attempt < this.settings.tries; attempt++) {
      for (const server of this.servers) {
        this.counters.queries += 1;
        const started = performance.now();
        let packet: DNS.Packet;
        try {
          packet = await server(qname, type);
        } catch {
          lastError = 'ETIMEOUT';
          smtpMetrics.dnsLookup(type, lastError, started);
          continue;
        }
        const rcode = packet.header.rcode;
        if (rcode !== 0 && rcode !== 3) {
          lastError = RCODE[rcode] ?? 'EBADRESP';
          smtpMetrics.dnsLookup(type, lastError, started);
          continue;
        }
        smtpMetrics.dnsLookup(type, '', started);
        const entry = this.entryOf(packet, type);
        const ttl = this.ttlOf(packet, entry);
        if (ttl > 0) this.cache.set(`${type} ${qname}`, entry, { ttl: ttl * 1000 });
        return entry;
      }
    }
    return { error: lastError };
  }

  private entryOf(packet: DNS.Packet, type: RecordType): CacheEntry {
    if (packet.header.rcode === 3) return { error: 'ENOTFOUND' };
    const code = TYPE_CODE[type];
    const records: unknown[] = [];
    for (const a of packet.answers as unknown as Array<Record<string, unknown>>) {
      if (a.type !== code) continue;
      switch (type) {
        case 'A':
        case 'AAAA':
          records.push(a.address);
          break;
        case 'TXT':
          records.push(a.data);
          break;
        case 'MX':
          records.push({ exchange: a.exchange, priority: a.priority });
          break;
        case 'NS':
          records.push(a.ns);
          break;
        default:
          records.push(a.domain);
      }
    }
    return records.length ? { records } : { error: 'ENODATA' };
  }

  /** Seconds to keep an answer: the records' smallest TTL, or the negative TTL of the SOA (RFC 2308 5). */
  private ttlOf(packet: DNS.Packet, entry: CacheEntry): number {
    const c = this.settings.cache;
    let ttl: number;
    if ('records' in entry) {
      ttl = Math.min(...(packet.answers as unknown as Array<{ ttl: number }>).map((a) => a.ttl));
    } else {
      const soa = (
        packet.authorities as unknown as Array<{ type: number; ttl: number; minimum?: number }>
      ).find((a) => a.type === DNS.Packet.TYPE.SOA);
      ttl = soa ? Math.min(soa.ttl, soa.minimum ?? soa.ttl) : c.negativeTtlSeconds;
    }
    return Math.max(c.minTtlSeconds, Math.min(c.maxTtlSeconds, Number.isFinite(ttl) ? ttl : 0));
  }
}

/** in-addr.arpa / ip6.arpa name of an address (RFC 1035 3.5, RFC 3596 2.5). */
export function reverseZone(ip: string): string {
  if (isIP(ip) === 4) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const nibbles = ipv6Groups(ip)
    .map((g) => g.padStart(4, '0'))
    .join('');
  return `${nibbles.split('').reverse().join('.')}.ip6.arpa`;
}
