import type { Config } from '@smtpguard/config';
import { auth } from '@smtpguard/contracts';
import { NetworkList } from '@smtpguard/networks';

type AuthConfig = Config['auth'];
type DomainConfig = AuthConfig['domains'][number];
type MailboxConfig = DomainConfig['mailboxes'][number];
type ListConfig = DomainConfig['lists'][string];

export interface RecipientResolution {
  status: auth.RecipientStatus;
  reasonCode: string;
  deliveryAddresses: string[];
  domain: string;
}

/** Who is sending, for the recipient checks that depend on it (lists, sender block lists). */
export interface SenderContext {
  /** MAIL FROM address; "" for the null sender. */
  sender: string;
  /** The account whose rights apply (SMTP AUTH, or POP-before-SMTP); "" for none. */
  account: string;
}

export interface SenderResolution {
  domainLocal: boolean;
  addressKnown: boolean;
  ownerAccount: string;
  authenticatedUserMaySend: boolean;
  localOnly: boolean;
  disabled: boolean;
  reasonCode: string;
  domain: string;
  authorizationRequired: boolean;
  refusalTemporary: boolean;
  refusalMessage: string;
  allowedIpRule: string;
  allowedIpCount: number;
}

export interface SendingLimits {
  messagesPerHour: number;
  recipientsPerHour: number;
  /** Where each limit came from: "mailbox", "domain" or "global" (messages/recipients). */
  source: string;
}

interface Alias {
  targets: string[];
  disabled: boolean;
}

interface List extends ListConfig {
  members: string[];
}

// Aliases may point at aliases; deeper chains than this are treated as a loop.
const MAX_ALIAS_DEPTH = 10;

export function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  if (at < 0) return { local: address.toLowerCase(), domain: '' };
  return { local: address.slice(0, at).toLowerCase(), domain: address.slice(at + 1).toLowerCase() };
}

/** A target as written under a domain: a bare local part is an address of that domain. */
const qualify = (target: string, domain: string) =>
  target.includes('@') ? target.toLowerCase() : `${target.toLowerCase()}@${domain}`;

/** An address pattern of sendAs, list senders and block lists: a full address, "@domain" or "domain". */
function matchesPattern(address: string, pattern: string): boolean {
  const p = pattern.toLowerCase().trim();
  if (p.includes('@') && !p.startsWith('@')) return address === p;
  const domain = splitAddress(address).domain;
  const d = p.replace(/^@/, '').replace(/^\./, '');
  return domain === d || domain.endsWith(`.${d}`);
}

/**
 * The directory as configured under auth: local domains with their mailboxes, aliases (which may be disabled),
 * distribution lists, catch-all, sender block lists and local-sender policy; relay domains with route lists.
 * Alias targets and list members written as a bare local part are addresses of the alias's own domain.
 */
export class Directory {
  private domains = new Map<string, DomainConfig>();
  private mailboxes = new Map<string, MailboxConfig>();
  private aliases = new Map<string, Alias>();
  private lists = new Map<string, List>();
  private relayDomains = new Map<string, Set<string>>();
  private allowedIps = new Map<string, NetworkList>();

  constructor(
    domains: DomainConfig[],
    private readonly policy: Partial<
      Pick<AuthConfig, 'relayDomains' | 'localSenders' | 'remoteSending' | 'sendingLimits'>
    > = {},
  ) {
    for (const d of domains) {
      const name = d.name.toLowerCase();
      this.domains.set(name, d);
      for (const m of d.mailboxes) this.mailboxes.set(m.address.toLowerCase(), m);
      for (const [alias, value] of Object.entries(d.aliases)) {
        const a = Array.isArray(value) ? { targets: value, disabled: false } : value;
        this.aliases.set(qualify(alias, name), {
          targets: a.targets.map((t) => qualify(t, name)),
          disabled: a.disabled,
        });
      }
      for (const [list, value] of Object.entries(d.lists)) {
        this.lists.set(qualify(list, name), {
          ...value,
          members: value.members.map((t) => qualify(t, name)),
        });
      }
      try {
        this.allowedIps.set(name, new NetworkList(d.localSenders.allowedIps));
      } catch (err) {
        throw new Error(`auth.domains[${name}].localSenders.allowedIps: ${(err as Error).message}`);
      }
    }
    for (const r of policy.relayDomains ?? []) {
      this.relayDomains.set(r.name.toLowerCase(), new Set(r.recipients.map((a) => a.toLowerCase())));
    }
  }

  isLocalDomain(domain: string): boolean {
    return this.domains.has(domain.toLowerCase());
  }

  mailbox(address: string): MailboxConfig | undefined {
    return this.mailboxes.get(address.toLowerCase());
  }

  domainOf(address: string): DomainConfig | undefined {
    return this.domains.get(splitAddress(address).domain);
  }

  /** Whether an account that authenticated earlier may still send (re-checked before each transaction). */
  accountState(account: string): auth.AccountState {
    const mailbox = this.mailboxes.get(account.toLowerCase());
    if (!mailbox) return auth.AccountState.ACCOUNT_STATE_UNKNOWN;
    if (mailbox.disabled) return auth.AccountState.ACCOUNT_STATE_DISABLED;
    if (this.domains.get(splitAddress(account).domain)?.disabled)
      return auth.AccountState.ACCOUNT_STATE_DOMAIN_DISABLED;
    if (mailbox.preventAuth) return auth.AccountState.ACCOUNT_STATE_AUTH_DENIED;
    return auth.AccountState.ACCOUNT_STATE_ACTIVE;
  }

  resolveRecipient(address: string, who: SenderContext = { sender: '', account: '' }): RecipientResolution {
    const addr = address.toLowerCase();
    const { domain } = splitAddress(addr);
    const d = this.domains.get(domain);
    const S = auth.RecipientStatus;
    const result = (status: auth.RecipientStatus, reasonCode: string, deliveryAddresses: string[] = []) => ({
      status,
      reasonCode,
      deliveryAddresses,
      domain: d || this.relayDomains.has(domain) ? domain : '',
    });
    if (!d) {
      const route = this.relayDomains.get(domain);
      if (!route) return result(S.RECIPIENT_STATUS_NOT_LOCAL, 'rcpt.not_local');
      if (route.size && !route.has(addr))
        return result(S.RECIPIENT_STATUS_NOT_IN_ROUTE_LIST, 'rcpt.not_in_route_list');
      return result(S.RECIPIENT_STATUS_ROUTE, 'rcpt.route', [addr]);
    }
    if (d.disabled) return result(S.RECIPIENT_STATUS_DOMAIN_DISABLED, 'rcpt.domain_disabled');
    const sender = who.sender.toLowerCase();
    if (sender && d.blockedSenderDomains.some((p) => matchesPattern(sender, p)))
      return result(S.RECIPIENT_STATUS_SENDER_BLOCKED, 'rcpt.sender_blocked');

    const mailbox = this.mailboxes.get(addr);
    if (mailbox) {
      return mailbox.disabled
        ? result(S.RECIPIENT_STATUS_MAILBOX_DISABLED, 'rcpt.mailbox_disabled')
        : result(S.RECIPIENT_STATUS_MAILBOX, 'rcpt.local', [addr]);
    }
    const alias = this.aliases.get(addr);
    if (alias) {
      if (alias.disabled) return result(S.RECIPIENT_STATUS_ALIAS_DISABLED, 'rcpt.alias_disabled');
      const final = this.expand(addr, 0, new Set());
      return final
        ? result(S.RECIPIENT_STATUS_ALIAS, 'rcpt.local', final)
        : result(S.RECIPIENT_STATUS_ROUTING_LOOP, 'rcpt.routing_loop');
    }
    const list = this.lists.get(addr);
    if (list) {
      if (list.disabled) return result(S.RECIPIENT_STATUS_LIST_DISABLED, 'rcpt.list_disabled');
      if (!this.mayPost(list, sender, who.account.toLowerCase()))
        return result(S.RECIPIENT_STATUS_LIST_NOT_AUTHORIZED, 'rcpt.list_not_authorized');
      const final = this.expand(addr, 0, new Set());
      return final
        ? result(S.RECIPIENT_STATUS_LIST, 'rcpt.local', final)
        : result(S.RECIPIENT_STATUS_ROUTING_LOOP, 'rcpt.routing_loop');
    }
    if (d.catchAll) {
      const final = this.expand(qualify(d.catchAll, domain), 0, new Set());
      return final
        ? result(S.RECIPIENT_STATUS_CATCH_ALL, 'rcpt.catch_all', final)
        : result(S.RECIPIENT_STATUS_ROUTING_LOOP, 'rcpt.routing_loop');
    }
    return result(S.RECIPIENT_STATUS_UNKNOWN_USER, 'rcpt.unknown_user');
  }

  private mayPost(list: List, sender: string, account: string): boolean {
    switch (list.post) {
      case 'anyone':
        return true;
      case 'authenticated':
        return Boolean(account);
      case 'members':
        return Boolean(sender) && list.members.includes(sender);
      case 'senders':
        return Boolean(sender) && list.senders.some((p) => matchesPattern(sender, p));
    }
  }

  /** Final addresses of an alias or list chain; undefined on a loop, too deep a chain or a dangling target. */
  private expand(addr: string, depth: number, seen: Set<string>): string[] | undefined {
    if (depth > MAX_ALIAS_DEPTH || seen.has(addr)) return undefined;
    seen.add(addr);
    const alias = this.aliases.get(addr);
    const list = this.lists.get(addr);
    const targets = alias
      ? alias.disabled
        ? undefined
        : alias.targets
      : list && !list.disabled
        ? list.members
        : undefined;
    if (!targets) {
      if (alias || list) return undefined; // a disabled alias or list inside a chain
      const { domain } = splitAddress(addr);
      if (!this.domains.has(domain)) return [addr]; // remote target: forwarded as is
      const m = this.mailboxes.get(addr);
      return m && !m.disabled ? [addr] : undefined;
    }
    const out: string[] = [];
    for (const t of targets) {
      const sub = this.expand(t, depth + 1, new Set(seen));
      if (!sub) return undefined;
      out.push(...sub);
    }
    return [...new Set(out)];
  }

  /** Whether `account` may use `address` as sender: its own, an alias that reaches it, or a sendAs entry. */
  maySend(account: string, address: string): boolean {
    const acc = account.toLowerCase();
    const addr = address.toLowerCase();
    if (!acc || !addr) return false;
    if (acc === addr) return true;
    const mailbox = this.mailboxes.get(acc);
    if (mailbox?.sendAs.some((p) => matchesPattern(addr, p))) return true;
    if (this.aliases.has(addr) && !this.aliases.get(addr)?.disabled) {
      return this.expand(addr, 0, new Set())?.includes(acc) ?? false;
    }
    return false;
  }

  /** The sender at MAIL FROM: local or not, known, owned, disabled, and the domain's local-sender policy. */
  resolveSender(address: string, account: string, clientIp: string): SenderResolution {
    const addr = address.toLowerCase();
    const { domain } = splitAddress(addr);
    const d = this.domains.get(domain);
    const mailbox = this.mailboxes.get(addr);
    const alias = this.aliases.get(addr);
    const list = this.lists.get(addr);
    const known = Boolean(mailbox || alias || list);
    let owner = mailbox ? addr : '';
    if (!owner && alias && !alias.disabled) {
      const final = (this.expand(addr, 0, new Set()) ?? []).filter((a) => this.mailboxes.has(a));
      if (final.length === 1) owner = final[0] as string;
    }
    const disabled = Boolean(d?.disabled || mailbox?.disabled || alias?.disabled || list?.disabled);
    const global = this.policy.localSenders ?? {
      requireAuthorization: true,
      refusal: 'permanent',
      message: '',
    };
    const own = d?.localSenders;
    const allowed = d ? this.allowedIps.get(domain) : undefined;
    const reasonCode = !d
      ? 'mail.sender_remote'
      : !known || disabled
        ? 'relay.denied.sender_unknown'
        : 'mail.sender_local';
    return {
      domainLocal: Boolean(d),
      addressKnown: known,
      ownerAccount: owner,
      authenticatedUserMaySend: this.maySend(account, addr),
      localOnly: this.localOnly(account),
      disabled,
      reasonCode,
      domain: d ? domain : '',
      authorizationRequired: Boolean(d) && (own?.requireAuthorization ?? global.requireAuthorization),
      refusalTemporary: (own?.refusal ?? global.refusal) === 'temporary',
      refusalMessage: own?.message ?? global.message,
      allowedIpRule: (clientIp && allowed?.match(clientIp)) || '',
      allowedIpCount: own?.allowedIps.length ?? 0,
    };
  }

  /** MailEnable's sender policy for an account: server policy, then post office, then mailbox. */
  localOnly(account: string): boolean {
    if (!account) return false;
    const server = this.policy.remoteSending ?? 'perDomain';
    if (server !== 'perDomain') return server === 'localOnly';
    const d = this.domainOf(account);
    const policy = d?.remoteSending ?? 'perMailbox';
    if (policy !== 'perMailbox') return policy === 'localOnly';
    return this.mailboxes.get(account.toLowerCase())?.localOnly ?? false;
  }

  /** Hourly limits of an account: the mailbox's, else its domain's, else the global ones (0: none). */
  sendingLimits(account: string): SendingLimits {
    const m = this.mailboxes.get(account.toLowerCase())?.sendingLimits;
    const d = this.domainOf(account)?.sendingLimits;
    const g = this.policy.sendingLimits ?? { messagesPerHour: 0, recipientsPerHour: 0 };
    const pick = (key: 'messagesPerHour' | 'recipientsPerHour'): [number, string] =>
      m?.[key] !== undefined
        ? [m[key], 'mailbox']
        : d?.[key] !== undefined
          ? [d[key], 'domain']
          : [g[key], 'global'];
    const [messagesPerHour, ms] = pick('messagesPerHour');
    const [recipientsPerHour, rs] = pick('recipientsPerHour');
    return { messagesPerHour, recipientsPerHour, source: `${ms}/${rs}` };
  }
}

/** The directory from the auth section of the config. */
export function directoryFrom(a: AuthConfig): Directory {
  return new Directory(a.domains, a);
}
