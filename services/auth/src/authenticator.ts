import { auth } from '@smtpguard/contracts';
import type { Directory } from './directory.js';
import { dummyPasswordHash, verifyPassword } from './passwords.js';

export interface AuthOutcome {
  result: auth.AuthResult;
  account: string;
  reasonCode: string;
}

/** SMTP AUTH against the directory's mailboxes. The account name is the full address. */
export class Authenticator {
  constructor(
    private readonly directory: () => Directory,
    private readonly mechanisms: () => string[],
  ) {}

  async authenticate(mechanism: string, username: string, password: string): Promise<AuthOutcome> {
    const mech = mechanism.toUpperCase();
    if (!this.mechanisms().includes(mech)) {
      return {
        result: auth.AuthResult.AUTH_RESULT_MECHANISM_UNSUPPORTED,
        account: '',
        reasonCode: 'auth.mechanism_unsupported',
      };
    }
    const mailbox = this.directory().mailbox(username.trim());
    // Unknown users cost as much as known ones, so timing does not reveal which accounts exist.
    const ok = await verifyPassword(password, mailbox?.passwordHash ?? (await dummyPasswordHash()));
    if (!mailbox || !ok) {
      return {
        result: auth.AuthResult.AUTH_RESULT_BAD_CREDENTIALS,
        account: '',
        reasonCode: 'auth.bad_credentials',
      };
    }
    if (mailbox.disabled) {
      return {
        result: auth.AuthResult.AUTH_RESULT_ACCOUNT_DISABLED,
        account: mailbox.address,
        reasonCode: 'auth.account_disabled',
      };
    }
    return {
      result: auth.AuthResult.AUTH_RESULT_OK,
      account: mailbox.address.toLowerCase(),
      reasonCode: 'auth.ok',
    };
  }
}
