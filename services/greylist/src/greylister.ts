import type { Config } from '@smtpguard/config';
import { ClientRules } from '@smtpguard/networks';
import type { GreylistStore, TripletRecord } from './store/store.js';
import { clientNetwork, normalizeSender, tripletKey } from './triplet.js';

export type GreylistSettings = Config['greylist'];

export interface CheckInput {
  clientIp: string;
  /** Verified reverse DNS name of the client (FCrDNS), for host-name and domain whitelist rules. */
  clientHostname?: string;
  sender: string;
  recipient: string;
  authenticated: boolean;
  trusted: boolean;
  /** Sender domain whose SPF authorizes the client IP; keys the triplet on the domain (sender IP pools). */
  spfPassDomain?: string;
  dnswlListed?: boolean;
}

export type CheckReason =
  | 'greylist.new'
  | 'greylist.early_retry'
  | 'greylist.passed'
  | 'greylist.whitelisted'
  | 'greylist.auto_whitelisted'
  | 'greylist.skipped_authenticated'
  | 'greylist.disabled_for_recipient';

export interface CheckResult {
  action: 'pass' | 'defer';
  reasonCode: CheckReason;
  retryAfterSeconds: number;
  /** Seconds the triplet was held back before its first pass (0 otherwise). */
  delayedSeconds: number;
  key: string;
  /** Client part of the key: network or spf:<domain>. */
  client: string;
  /** Whitelist rule that matched ("recipient:postmaster", "client:192.0.2.0/24", "dnswl"). */
  rule: string;
  /** Seconds since the triplet was first seen. */
  ageSeconds: number;
}

/** Unix seconds; injectable so tests move time without sleeping. */
export type Clock = () => number;
export const systemClock: Clock = () => Math.floor(Date.now() / 1000);

// The administrator's whitelist (in the store) is re-read at most this often; admin calls invalidate it.
const WHITELIST_CACHE_SECONDS = 5;

/**
 * Greylisting with postgrey's semantics (defaults: 300 s delay, 2-day retry window, 35-day expiry,
 * auto-whitelist after 5 deliveries counted at most hourly) and the scope rules of MailEnable (server,
 * domain with "force", mailbox). Beyond postgrey: when SPF authorizes the client for the sender's
 * domain, the triplet is keyed on that domain, so senders that rotate through IP pools are delayed once.
 */
export class Greylister {
  private cache: { at: number; configRules: string; clients: ClientRules; recipients: string[] } | undefined;

  constructor(
    private readonly store: GreylistStore,
    private readonly settings: () => GreylistSettings,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Deliveries after which a client is auto-whitelisted (0: off). */
  autoWhitelistThreshold(): number {
    return this.settings().autoWhitelist.deliveries;
  }

  /** Drops the cached whitelist (after an admin change). */
  invalidate(): void {
    this.cache = undefined;
  }

  private async rules(now: number): Promise<{ clients: ClientRules; recipients: string[] }> {
    const s = this.settings();
    const configRules = JSON.stringify([s.whitelistClients, s.whitelistRecipients]);
    if (
      this.cache &&
      this.cache.configRules === configRules &&
      now - this.cache.at < WHITELIST_CACHE_SECONDS
    ) {
      return this.cache;
    }
    const admin = await this.store.listWhitelist();
    const clientRules = [
      ...s.whitelistClients,
      ...admin.filter((e) => e.kind === 'client').map((e) => e.value),
    ];
    const recipients = [
      ...s.whitelistRecipients,
      ...admin.filter((e) => e.kind === 'recipient').map((e) => e.value),
    ];
    this.cache = {
      at: now,
      configRules,
      clients: new ClientRules(clientRules),
      recipients: recipients.map((r) => r.toLowerCase()),
    };
    return this.cache;
  }

  /** on / off for a recipient: domain "force" > mailbox > domain > server default. */
  scopeFor(recipient: string): 'on' | 'off' {
    const { scope } = this.settings();
    const r = recipient.toLowerCase();
    const domain = r.slice(r.lastIndexOf('@') + 1);
    const d = scope.domains[domain];
    if (d === 'force') return 'on';
    return scope.mailboxes[r] ?? d ?? scope.default;
  }

  async check(input: CheckInput): Promise<CheckResult> {
    const s = this.settings();
    const now = this.clock();
    const base = { retryAfterSeconds: 0, delayedSeconds: 0, key: '', client: '', rule: '', ageSeconds: 0 };
    const pass = (reasonCode: CheckReason, rule = ''): CheckResult => ({
      ...base,
      action: 'pass',
      reasonCode,
      rule,
    });

    if (input.authenticated || input.trusted) return pass('greylist.skipped_authenticated');
    if (this.scopeFor(input.recipient) === 'off') return pass('greylist.disabled_for_recipient');
    if (input.dnswlListed && s.skipDnswl) return pass('greylist.whitelisted', 'dnswl');

    const rules = await this.rules(now);
    const rcpt = input.recipient.toLowerCase();
    const at = rcpt.lastIndexOf('@');
    const rcptRule = rules.recipients.find(
      (w) => w === rcpt || w === rcpt.slice(0, at) || (w.startsWith('@') && w === rcpt.slice(at)),
    );
    if (rcptRule) return pass('greylist.whitelisted', `recipient:${rcptRule}`);
    const clientRule = rules.clients.match(input.clientIp, input.clientHostname);
    if (clientRule) return pass('greylist.whitelisted', `client:${clientRule}`);

    const client =
      s.spfDomainKeying && input.spfPassDomain
        ? `spf:${input.spfPassDomain.toLowerCase()}`
        : clientNetwork(input.clientIp, s.ipv4Prefix, s.ipv6Prefix);

    const aw = s.autoWhitelist;
    if (aw.deliveries > 0) {
      const c = await this.store.getClient(client);
      if (c && c.deliveries >= aw.deliveries && now - c.lastSeen <= s.expirySeconds) {
        await this.store.updateClient(client, (cur) => ({ ...(cur ?? c), lastSeen: now }));
        return { ...pass('greylist.auto_whitelisted', `auto:${client}`), client };
      }
    }

    const key = tripletKey(client, normalizeSender(input.sender), input.recipient);
    let result: CheckResult = { ...base, action: 'defer', reasonCode: 'greylist.new', key, client };
    await this.store.updateTriplet(key, (rec): TripletRecord => {
      const fresh = (): TripletRecord => {
        result = {
          ...base,
          key,
          client,
          action: 'defer',
          reasonCode: 'greylist.new',
          retryAfterSeconds: s.delaySeconds,
        };
        return { firstSeen: now, lastSeen: now, passedAt: 0, passCount: 0 };
      };
      if (!rec || now - rec.lastSeen > s.expirySeconds) return fresh();
      const age = now - rec.firstSeen;
      if (rec.passedAt) {
        result = { ...base, key, client, action: 'pass', reasonCode: 'greylist.passed', ageSeconds: age };
        return { ...rec, lastSeen: now, passCount: rec.passCount + 1 };
      }
      if (age < s.delaySeconds) {
        result = {
          ...base,
          key,
          client,
          action: 'defer',
          reasonCode: 'greylist.early_retry',
          retryAfterSeconds: s.delaySeconds - age,
          ageSeconds: age,
        };
        return { ...rec, lastSeen: now };
      }
      // The first retry came after the window: not a well-behaved MTA retrying; start over.
      if (age > s.retryWindowSeconds) return fresh();
      result = {
        ...base,
        key,
        client,
        action: 'pass',
        reasonCode: 'greylist.passed',
        delayedSeconds: age,
        ageSeconds: age,
      };
      return { ...rec, lastSeen: now, passedAt: now, passCount: 1 };
    });

    if (result.action === 'pass' && aw.deliveries > 0) {
      await this.store.updateClient(client, (cur) => {
        if (!cur) return { deliveries: 1, lastCountedAt: now, lastSeen: now };
        const counts = now - cur.lastCountedAt >= aw.intervalSeconds;
        return {
          deliveries: cur.deliveries + (counts ? 1 : 0),
          lastCountedAt: counts ? now : cur.lastCountedAt,
          lastSeen: now,
        };
      });
    }
    return result;
  }
}
