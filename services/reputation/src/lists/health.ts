import type { Logger } from '@smtpguard/logging';
import type { CachingResolver } from '../dns/resolver.js';
import { type AnswerRules, classify } from './answers.js';

/** IP lists are asked with reversed addresses, domain lists (URIBL) with names. */
export type ListKind = 'ip' | 'domain';

export interface ZoneHealth {
  zone: string;
  kind: ListKind;
  /** Passed its last health check (or was never checked because checks are off). */
  enabled: boolean;
  /** Checks run, checks failed, and how often the zone was disabled. */
  checks: number;
  failures: number;
  disabledCount: number;
  /** What the last failed check found; "" after a pass. */
  lastError: string;
  lastCheckedAt: number;
}

// RFC 5782 5: the test points every list must have and must not have.
const TEST_POINTS: Record<ListKind, { listed: string; notListed: string }> = {
  ip: { listed: '2.0.0.127', notListed: '1.0.0.127' },
  domain: { listed: 'test', notListed: 'invalid' },
};

// At a test point any 127/8 answer but 127.0.0.1 counts, whatever answers the zone picks for its checks.
const anyListing = (zone: string): AnswerRules => ({
  zone,
  answers: [],
  bitmask: 0,
  errorAnswers: ['127.255.255.0/24'],
});

/**
 * RFC 5782 section 5 health checks of the DNS lists: each list must list its test point (127.0.0.2, or "test"
 * for domain lists) and must not list 127.0.0.1 ("invalid"). A list that answers everything (wildcard), answers
 * with its error codes, or does not answer fails and is disabled (logged, counted) until a later check passes.
 * A newly configured list is checked before its first use. Checks bypass the DNS cache.
 */
export class ListHealth {
  private readonly states = new Map<string, ZoneHealth>();
  private readonly pending = new Map<string, Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private watched: Array<{ zone: string; kind: ListKind }> = [];
  enabled = true;

  constructor(
    private readonly resolver: () => CachingResolver,
    private readonly logger: Logger,
  ) {}

  /** Every list's health, for logs and metrics. */
  snapshot(): ZoneHealth[] {
    return [...this.states.values()].map((s) => ({ ...s }));
  }

  /** The lists to watch (from the config); lists not seen before are checked at once. */
  watch(
    zones: Array<{ zone: string; kind: ListKind }>,
    opts: { enabled: boolean; intervalSeconds: number },
  ): void {
    this.enabled = opts.enabled;
    this.watched = zones;
    clearInterval(this.timer);
    this.timer = undefined;
    if (!opts.enabled) return;
    for (const z of zones) void this.ready(z.zone, z.kind);
    this.timer = setInterval(() => void this.checkAll(), opts.intervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Whether the list may be asked: waits for its first check; always true when checks are off. */
  async ready(zone: string, kind: ListKind): Promise<boolean> {
    if (!this.enabled) return true;
    const key = `${kind} ${zone.toLowerCase()}`;
    if (!this.states.has(key)) {
      let p = this.pending.get(key);
      if (!p) {
        p = this.check(zone, kind).finally(() => this.pending.delete(key));
        this.pending.set(key, p);
      }
      await p;
    }
    return this.states.get(key)?.enabled ?? false;
  }

  /** Runs the checks of every watched list now. */
  async checkAll(): Promise<void> {
    await Promise.all(this.watched.map((z) => this.check(z.zone, z.kind)));
  }

  private async check(zone: string, kind: ListKind): Promise<void> {
    const key = `${kind} ${zone.toLowerCase()}`;
    const problem = await this.probe(zone, kind);
    const prev = this.states.get(key);
    const s: ZoneHealth = prev ?? {
      zone,
      kind,
      enabled: true,
      checks: 0,
      failures: 0,
      disabledCount: 0,
      lastError: '',
      lastCheckedAt: 0,
    };
    s.checks += 1;
    s.lastCheckedAt = Date.now();
    if (problem) {
      s.failures += 1;
      s.lastError = problem;
      if (s.enabled || !prev) {
        s.disabledCount += 1;
        this.logger.warn({ zone, kind, problem }, 'DNS list failed its RFC 5782 health check: disabled');
      }
      s.enabled = false;
    } else {
      if (prev && !prev.enabled)
        this.logger.info({ zone, kind }, 'DNS list passed its health check: enabled');
      s.enabled = true;
      s.lastError = '';
    }
    this.states.set(key, s);
  }

  /** What is wrong with the list; "" when it behaves. */
  private async probe(zone: string, kind: ListKind): Promise<string> {
    const points = TEST_POINTS[kind];
    const rules = anyListing(zone);
    const ask = async (label: string): Promise<{ listed: string[]; errors: string[] } | string> => {
      try {
        return classify(rules, await this.resolver().query(`${label}.${zone}`, 'A', { cache: false }));
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'ENOTFOUND' || code === 'ENODATA') return { listed: [], errors: [] };
        return `${label}.${zone}: ${code ?? (err as Error).message}`;
      }
    };
    const [listed, notListed] = await Promise.all([ask(points.listed), ask(points.notListed)]);
    if (typeof listed === 'string') return listed;
    if (typeof notListed === 'string') return notListed;
    if (listed.errors.length || notListed.errors.length)
      return `answers with error codes (${[...listed.errors, ...notListed.errors].join(', ')})`;
    if (!listed.listed.length) return `test point ${points.listed} is not listed`;
    if (notListed.listed.length)
      return `${points.notListed} is listed (${notListed.listed.join(', ')}): the list answers everything`;
    return '';
  }
}
