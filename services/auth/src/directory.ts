import type { Config } from '@smtpguard/config';
import { auth } from '@smtpguard/contracts';

type DomainConfig = Config['auth']['domains'][number];
type MailboxConfig = DomainConfig['mailboxes'][number];

export interface RecipientResolution {
  status: auth.RecipientStatus;
  reasonCode: string;
  deliveryAddresses: string[];
  domain: string;
}

// Aliases may point at aliases; deeper chains than this are treated as a loop.
const MAX_ALIAS_DEPTH = 10;

export function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  if (at < 0) return { local: address.toLowerCase(), domain: '' };
  return { local: address.slice(0, at).toLowerCase(), domain: address.slice(at + 1).toLowerCase() };
}

/** The local domains and their mailboxes and aliases, as configured under auth.domains. */
export class Directory {
  private domains = new Map<string, DomainConfig>();
  private mailboxes = new Map<string, MailboxConfig>();
  private aliases = new Map<string, string[]>();

  constructor(domains: DomainConfig[]) {
    for (const d of domains) {
      const name = d.name.toLowerCase();
      this.domains.set(name, d);
      for (const m of d.mailboxes) this.mailboxes.set(m.address.toLowerCase(), m);
      for (const [alias, targets] of Object.entries(d.aliases)) {
        const full = alias.includes('@') ? alias.toLowerCase() : `${alias.toLowerCase()}@${name}`;
        this.aliases.set(
          full,
          targets.map((t) => t.toLowerCase()),
        );
      }
    }
  }

  isLocalDomain(domain: string): boolean {
    return this.domains.has(domain.toLowerCase());
  }

  mailbox(address: string): MailboxConfig | undefined {
    return this.mailboxes.get(address.toLowerCase());
  }

  /** Whether an account that authenticated earlier may still send (re-checked before each transaction). */
  accountState(account: string): auth.AccountState {
    const mailbox = this.mailboxes.get(account.toLowerCase());
    if (!mailbox) return auth.AccountState.ACCOUNT_STATE_UNKNOWN;
    if (mailbox.disabled) return auth.AccountState.ACCOUNT_STATE_DISABLED;
    if (this.domains.get(splitAddress(account).domain)?.disabled)
      return auth.AccountState.ACCOUNT_STATE_DOMAIN_DISABLED;
    return auth.AccountState.ACCOUNT_STATE_ACTIVE;
  }

  resolveRecipient(address: string): RecipientResolution {
    const addr = address.toLowerCase();
    const { domain } = splitAddress(addr);
    const d = this.domains.get(domain);
    const result = (status: auth.RecipientStatus, reasonCode: string, deliveryAddresses: string[] = []) => ({
      status,
      reasonCode,
      deliveryAddresses,
      domain: d ? domain : '',
    });
    if (!d) return result(auth.RecipientStatus.RECIPIENT_STATUS_NOT_LOCAL, 'rcpt.not_local');
    if (d.disabled)
      return result(auth.RecipientStatus.RECIPIENT_STATUS_DOMAIN_DISABLED, 'rcpt.domain_disabled');

    const mailbox = this.mailboxes.get(addr);
    if (mailbox) {
      return mailbox.disabled
        ? result(auth.RecipientStatus.RECIPIENT_STATUS_MAILBOX_DISABLED, 'rcpt.mailbox_disabled')
        : result(auth.RecipientStatus.RECIPIENT_STATUS_MAILBOX, 'rcpt.local', [addr]);
    }
    if (this.aliases.has(addr)) {
      const final = this.expand(addr, 0, new Set());
      return final
        ? result(auth.RecipientStatus.RECIPIENT_STATUS_ALIAS, 'rcpt.local', final)
        : result(auth.RecipientStatus.RECIPIENT_STATUS_ROUTING_LOOP, 'rcpt.routing_loop');
    }
    if (d.catchAll) {
      const final = this.expand(d.catchAll.toLowerCase(), 0, new Set());
      return final
        ? result(auth.RecipientStatus.RECIPIENT_STATUS_CATCH_ALL, 'rcpt.catch_all', final)
        : result(auth.RecipientStatus.RECIPIENT_STATUS_ROUTING_LOOP, 'rcpt.routing_loop');
    }
    return result(auth.RecipientStatus.RECIPIENT_STATUS_UNKNOWN_USER, 'rcpt.unknown_user');
  }

  /** Final addresses of an alias chain; undefined on a loop, too deep a chain or a dangling local target. */
  private expand(addr: string, depth: number, seen: Set<string>): string[] | undefined {
    if (depth > MAX_ALIAS_DEPTH || seen.has(addr)) return undefined;
    seen.add(addr);
    const targets = this.aliases.get(addr);
    if (!targets) {
      const { domain } = splitAddress(addr);
      if (!this.domains.has(domain)) return [addr]; // remote target: forwarded as is
      return this.mailboxes.has(addr) ? [addr] : undefined;
    }
    const out: string[] = [];
    for (const t of targets) {
      const sub = this.expand(t, depth + 1, new Set(seen));
      if (!sub) return undefined;
      out.push(...sub);
    }
    return [...new Set(out)];
  }
}
