import type { Config } from '@smtpguard/config';
import { KEEP, type KvBucket } from '@smtpguard/kv-store';
import { canonicalIp, NetworkList } from '@smtpguard/networks';

type LockoutConfig = Config['auth']['lockout'];

/** Failed logins of one account or one client IP. Times are Unix milliseconds. */
export interface FailureCounter {
  failures: number;
  windowStart: number;
  /** 0 when not locked. */
  lockedUntil: number;
}

export type LockoutKind = 'account' | 'client';

export interface LockState {
  kind: LockoutKind;
  value: string;
  failures: number;
  lockedUntil: number;
}

export const lockoutKey = (kind: LockoutKind, value: string) =>
  `${kind}:${kind === 'client' ? (canonicalIp(value) ?? value) : value.toLowerCase()}`;

/**
 * Failed logins counted per account and per client IP in a shared bucket (atomic compare-and-set updates, so
 * replicas never lose a failure). `accountThreshold` failures of one account, or `clientThreshold` from one IP,
 * within `windowSeconds` lock it for `lockoutSeconds`. IPs on the allowlist are never counted or locked. A
 * successful login clears the account's counter (not the IP's).
 */
export class Lockout {
  private allowlist: { rules: string[]; list: NetworkList } = { rules: [], list: new NetworkList([]) };

  constructor(
    private readonly bucket: KvBucket<FailureCounter>,
    private readonly cfg: () => LockoutConfig,
    private readonly now: () => number = Date.now,
  ) {}

  private allowed(ip: string): boolean {
    const rules = this.cfg().allowlist;
    if (rules !== this.allowlist.rules) this.allowlist = { rules, list: new NetworkList(rules) };
    return Boolean(ip && this.allowlist.list.match(ip));
  }

  /** The lock in force for the account or the client IP (the account's first), or undefined. */
  async locked(account: string, ip: string): Promise<LockState | undefined> {
    const c = this.cfg();
    if (!c.enabled || this.allowed(ip)) return undefined;
    const now = this.now();
    const [a, i] = await Promise.all([
      account ? this.bucket.get(lockoutKey('account', account)) : undefined,
      ip ? this.bucket.get(lockoutKey('client', ip)) : undefined,
    ]);
    if (a && a.lockedUntil > now)
      return {
        kind: 'account',
        value: account.toLowerCase(),
        failures: a.failures,
        lockedUntil: a.lockedUntil,
      };
    if (i && i.lockedUntil > now)
      return { kind: 'client', value: ip, failures: i.failures, lockedUntil: i.lockedUntil };
    return undefined;
  }

  private count(threshold: number) {
    const c = this.cfg();
    const now = this.now();
    return (cur: FailureCounter | undefined): FailureCounter | typeof KEEP => {
      if (cur && cur.lockedUntil > now) return KEEP; // locked: attempts are refused before they count
      const fresh = !cur || cur.lockedUntil > 0 || now - cur.windowStart >= c.windowSeconds * 1000;
      const failures = (fresh ? 0 : cur.failures) + 1;
      return {
        failures,
        windowStart: fresh ? now : cur.windowStart,
        lockedUntil: failures >= threshold ? now + c.lockoutSeconds * 1000 : 0,
      };
    };
  }

  /**
   * Counts a failed login of `account` (when it is a known account) and from `ip`. Returns the counters after
   * the failure (undefined where nothing was counted).
   */
  async fail(account: string, ip: string): Promise<{ account?: FailureCounter; client?: FailureCounter }> {
    const c = this.cfg();
    if (!c.enabled || this.allowed(ip)) return {};
    const [a, i] = await Promise.all([
      account
        ? this.bucket.update(lockoutKey('account', account), this.count(c.accountThreshold))
        : undefined,
      ip ? this.bucket.update(lockoutKey('client', ip), this.count(c.clientThreshold)) : undefined,
    ]);
    return { account: a, client: i };
  }

  /** A successful login: the account's failures are forgotten. */
  async succeed(account: string): Promise<void> {
    if (!this.cfg().enabled) return;
    const key = lockoutKey('account', account);
    const now = this.now();
    await this.bucket.update(key, (cur) => (cur && cur.lockedUntil <= now ? undefined : KEEP));
  }

  async list(query: string, limit: number, lockedOnly: boolean): Promise<LockState[]> {
    const now = this.now();
    const out: LockState[] = [];
    for (const [key, v] of await this.bucket.entries('', 100_000)) {
      const [kind, value] = [key.slice(0, key.indexOf(':')) as LockoutKind, key.slice(key.indexOf(':') + 1)];
      if (query && !value.includes(query.toLowerCase())) continue;
      if (lockedOnly && v.lockedUntil <= now) continue;
      out.push({ kind, value, failures: v.failures, lockedUntil: v.lockedUntil > now ? v.lockedUntil : 0 });
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Window start of a counter (for listings). */
  async counter(kind: LockoutKind, value: string): Promise<FailureCounter | undefined> {
    return this.bucket.get(lockoutKey(kind, value));
  }

  async clear(kind: LockoutKind | undefined, value: string): Promise<number> {
    const kinds: LockoutKind[] = kind ? [kind] : ['account', 'client'];
    let n = 0;
    for (const k of kinds) if (await this.bucket.delete(lockoutKey(k, value))) n++;
    return n;
  }
}
