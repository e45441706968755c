import { KEEP, type KvBucket } from '@smtpguard/kv-store';
import type { SendingLimits } from '../directory.js';

/** Messages and recipients an account sent in the current hour. Times are Unix milliseconds. */
export interface Usage {
  windowStart: number;
  messages: number;
  recipients: number;
}

export const HOUR_MS = 3600_000;

export interface QuotaResult {
  allowed: boolean;
  reasonCode: 'quota.ok' | 'quota.messages_exceeded' | 'quota.recipients_exceeded';
  usage: Usage;
  limits: SendingLimits;
}

/**
 * Hourly sending counters per account (a fixed window that starts with the first message counted), in a shared
 * bucket updated with compare-and-set: replicas never lose an increment. A request over a limit counts nothing.
 */
export class SendingQuota {
  constructor(
    private readonly bucket: KvBucket<Usage>,
    private readonly now: () => number = Date.now,
  ) {}

  private current(u: Usage | undefined, now: number): Usage {
    return u && now - u.windowStart < HOUR_MS ? u : { windowStart: now, messages: 0, recipients: 0 };
  }

  async consume(
    account: string,
    messages: number,
    recipients: number,
    limits: SendingLimits,
  ): Promise<QuotaResult> {
    const now = this.now();
    const key = account.toLowerCase();
    let reasonCode: QuotaResult['reasonCode'] = 'quota.ok';
    const usage =
      (await this.bucket.update(key, (cur) => {
        const u = this.current(cur, now);
        reasonCode = 'quota.ok';
        if (limits.messagesPerHour > 0 && messages > 0 && u.messages + messages > limits.messagesPerHour)
          reasonCode = 'quota.messages_exceeded';
        else if (
          limits.recipientsPerHour > 0 &&
          recipients > 0 &&
          u.recipients + recipients > limits.recipientsPerHour
        )
          reasonCode = 'quota.recipients_exceeded';
        if (reasonCode !== 'quota.ok') return cur === u ? KEEP : u;
        return { ...u, messages: u.messages + messages, recipients: u.recipients + recipients };
      })) ?? this.current(undefined, now);
    return { allowed: reasonCode === 'quota.ok', reasonCode, usage, limits };
  }

  async usage(account: string): Promise<Usage> {
    return this.current(await this.bucket.get(account.toLowerCase()), this.now());
  }

  reset(account: string): Promise<boolean> {
    return this.bucket.delete(account.toLowerCase());
  }
}
