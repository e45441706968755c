import type { ConfigHandle, LoadedConfig } from '@smtpguard/config';
import type { Logger } from '@smtpguard/logging';
import { smtpguardMeter } from '@smtpguard/telemetry';
import { CachingResolver, type DnsStats } from './dns/resolver.js';
import { validateRules } from './lists/answers.js';
import { ListHealth, type ListKind, type ZoneHealth } from './lists/health.js';

/** What the service keeps between calls: the DNS client and cache, and the health of the DNS lists. */
export class Reputation {
  resolver: CachingResolver;
  readonly health: ListHealth;
  private dnsKey = '';
  private statsTimer: NodeJS.Timeout | undefined;
  private lastStats = '';

  constructor(
    private readonly config: ConfigHandle,
    private readonly logger: Logger,
  ) {
    this.resolver = new CachingResolver(config.current.config.reputation.dns);
    this.dnsKey = JSON.stringify(config.current.config.reputation.dns);
    this.health = new ListHealth(() => this.resolver, logger);
    this.apply(config.current);
    config.onChange((c) => this.apply(c));
    this.observe();
  }

  /** The DNS cache counters and the lists' health as metrics, read when they are collected. */
  private observe(): void {
    const m = smtpguardMeter();
    const dns = (name: string, description: string, pick: (s: DnsStats) => number) =>
      m
        .createObservableCounter(name, { description, unit: '{question}' })
        .addCallback((r) => r.observe(pick(this.resolver.stats())));
    dns('smtpguard.dns.cache.hits', 'DNS questions answered from the cache', (s) => s.hits);
    dns('smtpguard.dns.cache.misses', 'DNS questions not in the cache (asked)', (s) => s.misses);
    dns(
      'smtpguard.dns.cache.joined',
      'DNS questions that waited for the same question under way',
      (s) => s.joined,
    );
    dns('smtpguard.dns.queries', 'DNS queries sent to the resolvers (each try counts)', (s) => s.queries);
    m.createObservableGauge('smtpguard.dns.cache.entries', {
      description: 'Answers held in the DNS cache',
      unit: '{entry}',
    }).addCallback((r) => r.observe(this.resolver.stats().entries));
    const zones = (name: string, description: string, pick: (z: ZoneHealth) => number, gauge = false) => {
      const opts = gauge ? { description } : { description, unit: '{check}' };
      const inst = gauge ? m.createObservableGauge(name, opts) : m.createObservableCounter(name, opts);
      inst.addCallback((r) => {
        for (const z of this.health.snapshot()) r.observe(pick(z), { zone: z.zone, kind: z.kind });
      });
    };
    zones(
      'smtpguard.dnsl.enabled',
      'A DNS list passed its last RFC 5782 health check (1) or is disabled (0)',
      (z) => (z.enabled ? 1 : 0),
      true,
    );
    zones('smtpguard.dnsl.health_checks', 'RFC 5782 health checks run on a DNS list', (z) => z.checks);
    zones('smtpguard.dnsl.health_check.failures', 'Health checks a DNS list failed', (z) => z.failures);
  }

  get rep() {
    return this.config.current.config.reputation;
  }

  get mta(): string {
    return this.config.current.config.edge.hostname;
  }

  /** A new config: the DNS client is rebuilt when its settings changed (its counters go on), lists rewatched. */
  private apply(c: LoadedConfig): void {
    const r = c.config.reputation;
    const key = JSON.stringify(r.dns);
    if (key !== this.dnsKey) {
      this.dnsKey = key;
      this.resolver = new CachingResolver(r.dns, this.resolver.counterState);
    }
    const zones: Array<{ zone: string; kind: ListKind }> = [];
    for (const z of [...r.dnsbl.zones, ...r.dnswl.zones, ...r.uribl.ipZones]) {
      validateRules(z);
      zones.push({ zone: z.zone, kind: 'ip' });
    }
    for (const z of r.uribl.zones) {
      validateRules(z);
      zones.push({ zone: z.zone, kind: 'domain' });
    }
    this.health.watch(zones, r.listHealth);
    clearInterval(this.statsTimer);
    this.statsTimer = setInterval(() => this.logStats(), r.listHealth.intervalSeconds * 1000);
    this.statsTimer.unref();
    this.logger.info(
      {
        dnsServers: r.dns.servers.length ? r.dns.servers : 'system',
        dnsbl: r.dnsbl.zones.map((z) => z.zone),
        dnswl: r.dnswl.zones.map((z) => z.zone),
        uribl: r.uribl.zones.map((z) => z.zone),
        uriblIp: r.uribl.ipZones.map((z) => z.zone),
      },
      'DNS lists',
    );
  }

  /** DNS cache counters and the lists' health, for logs and the metrics export. */
  stats(): { dns: DnsStats; lists: ZoneHealth[] } {
    return { dns: this.resolver.stats(), lists: this.health.snapshot() };
  }

  /** The DNS cache counters, at debug level, when they changed since the last time. */
  private logStats(): void {
    const dns = this.resolver.stats();
    const text = JSON.stringify(dns);
    if (text === this.lastStats) return;
    this.lastStats = text;
    this.logger.debug(dns, 'DNS cache');
  }

  stop(): void {
    clearInterval(this.statsTimer);
    this.health.stop();
    this.logger.info(this.stats().dns, 'DNS cache at stop');
  }
}
