import type { Config } from '@smtpguard/config';
import type { auth, reputation } from '@smtpguard/contracts';
import { TtlCache } from './ttl-cache.js';

/**
 * The edge's caches of the services' answers (edge.cache; docs/performance.md says what is kept and how long).
 * A new set is made at every config reload, so nothing outlives the config it was answered under.
 */
export class LookupCaches {
  /** auth.ResolveRecipient, by recipient, sender and account (all that the answer depends on). */
  readonly recipients: TtlCache<auth.ResolveRecipientResponse>;
  /** auth.ResolveSender, by sender address, account and client IP. */
  readonly senders: TtlCache<auth.ResolveSenderResponse>;
  /** reputation.CheckClient, by client IP. */
  readonly clients: TtlCache<reputation.CheckClientResponse>;
  /** reputation.CheckSender (SPF), by client IP, HELO and sender. */
  readonly spf: TtlCache<reputation.CheckSenderResponse>;
  /** reputation.CheckSenderDomain, by sender. */
  readonly senderDomains: TtlCache<reputation.CheckSenderDomainResponse>;
  /** reputation.CheckHelo, by client IP and HELO name. */
  readonly helos: TtlCache<reputation.CheckHeloResponse>;

  constructor(cfg: Config['edge']['cache'], now: () => number = Date.now) {
    const dir = cfg.directorySeconds * 1000;
    this.recipients = new TtlCache(dir, cfg.maxEntries, now);
    this.senders = new TtlCache(dir, cfg.maxEntries, now);
    this.clients = new TtlCache(cfg.clientReputationSeconds * 1000, cfg.maxEntries, now);
    const dns = cfg.senderChecksSeconds * 1000;
    this.spf = new TtlCache(dns, cfg.maxEntries, now);
    this.senderDomains = new TtlCache(dns, cfg.maxEntries, now);
    this.helos = new TtlCache(dns, cfg.maxEntries, now);
  }

  clear(): void {
    this.recipients.clear();
    this.senders.clear();
    this.clients.clear();
    this.spf.clear();
    this.senderDomains.clear();
    this.helos.clear();
  }
}

/** A verdict worth keeping: not one that says the lookup failed (a DNS timeout is asked again next time). */
export const settled = (r: { verdict?: { reasonCode: string } | undefined }): boolean =>
  !/(_error|temperror)$/.test(r.verdict?.reasonCode ?? '');

/** Cache key of values that may contain anything but NUL. */
export const cacheKey = (...parts: string[]): string => parts.map((p) => p.toLowerCase()).join('\0');
