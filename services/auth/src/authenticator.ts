import { auth } from '@smtpguard/contracts';
import type { Directory } from './directory.js';
import { dummyPasswordHash, verifyPassword } from './passwords.js';
import type { Lockout } from './state/lockout.js';

export interface AuthOutcome {
  result: auth.AuthResult;
  account: string;
  reasonCode: string;
  retryAfterSeconds?: number;
  failures?: number;
}

export interface AuthAttempt {
  mechanism: string;
  username: string;
  password: string;
  /** SASL PLAIN authorization identity; "" when none. */
  authzid: string;
  clientIp: string;
}

const R = auth.AuthResult;

/**
 * SMTP AUTH against the directory's mailboxes (the account name is the full address), with the lockout:
 * a locked account or client IP is refused before its password is looked at, and every wrong password counts.
 */
export class Authenticator {
  constructor(
    private readonly directory: () => Directory,
    private readonly opts: () => { mechanisms: string[]; allowAuthzid: boolean },
    private readonly lockout: Lockout,
  ) {}

  async authenticate(a: AuthAttempt): Promise<AuthOutcome> {
    const mech = a.mechanism.toUpperCase();
    const { mechanisms, allowAuthzid } = this.opts();
    if (!mechanisms.includes(mech))
      return {
        result: R.AUTH_RESULT_MECHANISM_UNSUPPORTED,
        account: '',
        reasonCode: 'auth.mechanism_unsupported',
      };
    const username = a.username.trim();
    const authzid = a.authzid.trim();
    if (authzid && authzid.toLowerCase() !== username.toLowerCase() && !allowAuthzid)
      return { result: R.AUTH_RESULT_AUTHZID_REFUSED, account: '', reasonCode: 'auth.authzid_refused' };
    const directory = this.directory();
    const mailbox = directory.mailbox(username);
    const lock = await this.lockout.locked(mailbox ? username : '', a.clientIp);
    if (lock) {
      return {
        result: R.AUTH_RESULT_LOCKED_OUT,
        account: '',
        reasonCode: lock.kind === 'account' ? 'auth.locked_out' : 'auth.client_locked_out',
        retryAfterSeconds: Math.max(1, Math.ceil((lock.lockedUntil - Date.now()) / 1000)),
        failures: lock.failures,
      };
    }
    // Unknown users cost as much as known ones, so timing does not reveal which accounts exist.
    const ok = await verifyPassword(a.password, mailbox?.passwordHash ?? (await dummyPasswordHash()));
    if (!mailbox || !ok) {
      // Unknown accounts count for the client IP only (no counters for names an attacker makes up).
      const after = await this.lockout.fail(mailbox ? username : '', a.clientIp);
      return {
        result: R.AUTH_RESULT_BAD_CREDENTIALS,
        account: '',
        reasonCode: 'auth.bad_credentials',
        failures: after.account?.failures ?? after.client?.failures,
      };
    }
    const account = mailbox.address.toLowerCase();
    const state = directory.accountState(account);
    if (state === auth.AccountState.ACCOUNT_STATE_DISABLED)
      return { result: R.AUTH_RESULT_ACCOUNT_DISABLED, account, reasonCode: 'auth.account_disabled' };
    if (state === auth.AccountState.ACCOUNT_STATE_DOMAIN_DISABLED)
      return { result: R.AUTH_RESULT_ACCOUNT_DISABLED, account, reasonCode: 'auth.domain_disabled' };
    if (state === auth.AccountState.ACCOUNT_STATE_AUTH_DENIED)
      return { result: R.AUTH_RESULT_AUTH_DENIED, account, reasonCode: 'auth.denied' };
    await this.lockout.succeed(account);
    return { result: R.AUTH_RESULT_OK, account, reasonCode: 'auth.ok' };
  }
}
