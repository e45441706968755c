import type { Directory } from './directory.js';
import type { Lockout } from './state/lockout.js';
import type { PopLogins } from './state/pop-logins.js';

/** A login reported by a mailbox server (Dovecot's auth policy report, a NATS event, RecordLogin). */
export interface LoginReport {
  login: string;
  clientIp: string;
  protocol: string;
  success: boolean;
  time?: number;
}

/**
 * What the auth service does with logins at the mailbox server: a successful one becomes a POP-before-SMTP entry
 * (when auth.popBeforeSmtp is on), a failed one counts toward the lockout like a failed SMTP AUTH. The login name
 * is taken as the account when it is a mailbox address of the directory (case folded), else as it came.
 */
export class LoginRecorder {
  constructor(
    private readonly directory: () => Directory,
    private readonly logins: PopLogins,
    private readonly lockout: Lockout,
    private readonly popEnabled: () => boolean,
  ) {}

  account(login: string): { account: string; known: boolean } {
    const m = this.directory().mailbox(login.trim());
    return m
      ? { account: m.address.toLowerCase(), known: true }
      : { account: login.trim().toLowerCase(), known: false };
  }

  /** Returns the expiry of the POP-before-SMTP entry (Unix ms) when one was recorded. */
  async report(r: LoginReport): Promise<{ recorded: boolean; expiresAt: number }> {
    const { account, known } = this.account(r.login);
    if (!r.success) {
      await this.lockout.fail(known ? account : '', r.clientIp);
      return { recorded: false, expiresAt: 0 };
    }
    if (!this.popEnabled()) return { recorded: false, expiresAt: 0 };
    const expiresAt = await this.logins.record(account, r.clientIp, r.time);
    return { recorded: true, expiresAt };
  }

  /** Dovecot's "allow" query: the lockout state of the login and the client IP. */
  async locked(login: string, clientIp: string) {
    const { account, known } = this.account(login);
    return this.lockout.locked(known ? account : '', clientIp);
  }
}
