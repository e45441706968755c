import type { Config } from '@smtpguard/config';
import type { KvBucket } from '@smtpguard/kv-store';
import { canonicalIp } from '@smtpguard/networks';

type PopConfig = Config['auth']['popBeforeSmtp'];

/** The POP3/IMAP logins seen from one client IP: account -> login time (Unix ms). */
export interface LoginEntry {
  accounts: Record<string, number>;
}

export interface PopCheck {
  authorized: boolean;
  account: string;
  expiresAt: number;
  reasonCode: 'pop.authorized' | 'pop.no_entry' | 'pop.sender_mismatch' | 'pop.disabled';
  accounts: string[];
}

/**
 * POP-before-SMTP entries: a successful POP3/IMAP login (reported by Dovecot's auth policy requests, a NATS
 * login event or RecordLogin) lets its client IP send as if authenticated for `windowSeconds`. One key per
 * client IP in a bucket whose max age is the window, so entries disappear by themselves (also in NATS KV).
 */
export class PopLogins {
  constructor(
    private readonly bucket: KvBucket<LoginEntry>,
    private readonly cfg: () => PopConfig,
    private readonly now: () => number = Date.now,
  ) {}

  private window(): number {
    return this.cfg().windowSeconds * 1000;
  }

  /** Stores a login; returns when the entry expires (Unix ms). */
  async record(account: string, ip: string, time = this.now()): Promise<number> {
    const key = canonicalIp(ip);
    if (!key) throw new Error(`not an IP address: "${ip}"`);
    if (!account) throw new Error('no account');
    const acc = account.toLowerCase();
    const cutoff = this.now() - this.window();
    await this.bucket.update(key, (cur) => {
      const accounts: Record<string, number> = {};
      for (const [a, t] of Object.entries(cur?.accounts ?? {})) if (t > cutoff) accounts[a] = t;
      accounts[acc] = Math.max(accounts[acc] ?? 0, time);
      return { accounts };
    });
    return time + this.window();
  }

  /**
   * Whether a login from `ip` authorizes a session sending as `sender`: any live entry, or with
   * sendersOfAccountOnly an entry of an account that may use the sender (`maySend`).
   */
  async check(
    ip: string,
    sender: string,
    maySend: (account: string, sender: string) => boolean,
  ): Promise<PopCheck> {
    const c = this.cfg();
    const none = { authorized: false, account: '', expiresAt: 0, accounts: [] as string[] };
    if (!c.enabled) return { ...none, reasonCode: 'pop.disabled' };
    const key = canonicalIp(ip);
    const entry = key ? await this.bucket.get(key) : undefined;
    const cutoff = this.now() - this.window();
    const live = Object.entries(entry?.accounts ?? {})
      .filter(([, t]) => t > cutoff)
      .sort((a, b) => b[1] - a[1]);
    if (!live.length) return { ...none, reasonCode: 'pop.no_entry' };
    const accounts = live.map(([a]) => a);
    const match = c.sendersOfAccountOnly ? live.find(([a]) => maySend(a, sender)) : live[0];
    if (!match) return { ...none, accounts, reasonCode: 'pop.sender_mismatch' };
    return {
      authorized: true,
      account: match[0],
      expiresAt: match[1] + this.window(),
      reasonCode: 'pop.authorized',
      accounts,
    };
  }
}
