import type { Config } from '@smtpguard/config';
import type { TripletStore } from './store/store.js';
import { clientNetwork, normalizeSender, tripletKey } from './triplet.js';

export type GreylistSettings = Config['greylist'];

export interface CheckInput {
  clientIp: string;
  sender: string;
  recipient: string;
  authenticated: boolean;
  trusted: boolean;
  /** Sender domain whose SPF authorizes the client IP; keys the triplet on the domain (sender IP pools). */
  spfPassDomain?: string;
  dnswlListed?: boolean;
}

export interface CheckResult {
  action: 'pass' | 'defer';
  reasonCode: string;
  retryAfterSeconds: number;
  delayedSeconds: number;
  key: string;
  rule: string;
  /** Seconds since the triplet was first seen (early retries). */
  ageSeconds: number;
}

/** Unix seconds; injectable so tests move time without sleeping. */
export type Clock = () => number;
export const systemClock: Clock = () => Math.floor(Date.now() / 1000);

/**
 * Greylisting with postgrey's semantics: a new client-network/sender/recipient triplet is deferred for
 * delaySeconds; a retry after that (and within retryWindowSeconds of first sight) passes; entries unseen
 * for expirySeconds are forgotten on access.
 */
export class Greylister {
  constructor(
    private readonly store: TripletStore,
    private readonly settings: () => GreylistSettings,
    private readonly clock: Clock = systemClock,
  ) {}

  private recipientWhitelisted(recipient: string, list: string[]): string {
    const r = recipient.toLowerCase();
    const local = r.split('@')[0] ?? r;
    return list.find((w) => w.toLowerCase() === r || w.toLowerCase() === local) ?? '';
  }

  async check(input: CheckInput): Promise<CheckResult> {
    const s = this.settings();
    const base = { retryAfterSeconds: 0, delayedSeconds: 0, key: '', rule: '', ageSeconds: 0 };
    if (input.authenticated || input.trusted) {
      return { ...base, action: 'pass', reasonCode: 'greylist.skipped_authenticated' };
    }
    const rule = this.recipientWhitelisted(input.recipient, s.whitelistRecipients);
    if (rule)
      return { ...base, action: 'pass', reasonCode: 'greylist.whitelisted', rule: `recipient:${rule}` };

    const client = input.spfPassDomain
      ? `spf:${input.spfPassDomain.toLowerCase()}`
      : clientNetwork(input.clientIp, s.ipv4Prefix, s.ipv6Prefix);
    const key = tripletKey(client, normalizeSender(input.sender), input.recipient);
    const now = this.clock();
    const rec = await this.store.get(key);

    const fresh = async (): Promise<CheckResult> => {
      await this.store.put(key, { firstSeen: now, lastSeen: now, passedAt: 0, passCount: 0 });
      return { ...base, key, action: 'defer', reasonCode: 'greylist.new', retryAfterSeconds: s.delaySeconds };
    };
    if (!rec || now - rec.lastSeen > s.expirySeconds) return fresh();

    if (rec.passedAt) {
      await this.store.put(key, { ...rec, lastSeen: now, passCount: rec.passCount + 1 });
      return { ...base, key, action: 'pass', reasonCode: 'greylist.passed', delayedSeconds: 0 };
    }
    const age = now - rec.firstSeen;
    if (age < s.delaySeconds) {
      await this.store.put(key, { ...rec, lastSeen: now });
      return {
        ...base,
        key,
        action: 'defer',
        reasonCode: 'greylist.early_retry',
        retryAfterSeconds: s.delaySeconds - age,
        ageSeconds: age,
      };
    }
    // The first retry came after the window: the sender is not a well-behaved MTA retrying; start over.
    if (age > s.retryWindowSeconds) return fresh();
    await this.store.put(key, { ...rec, lastSeen: now, passedAt: now, passCount: 1 });
    return {
      ...base,
      key,
      action: 'pass',
      reasonCode: 'greylist.passed',
      delayedSeconds: age,
      ageSeconds: age,
    };
  }
}
