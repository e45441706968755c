import type { Context, Span } from '@opentelemetry/api';
import { type auth, common, type reputation } from '@smtpguard/contracts';
import { referenceOf, type Vars } from '@smtpguard/reasons';
import { type HopTransaction, newMessageId } from './delivery/next-hop.js';

export type ListenerName = 'mx' | 'submission' | 'submissions';

const LISTENERS: Record<ListenerName, common.Listener> = {
  mx: common.Listener.LISTENER_MX,
  submission: common.Listener.LISTENER_SUBMISSION,
  submissions: common.Listener.LISTENER_SUBMISSIONS,
};

/** ESMTP parameters of MAIL FROM / RCPT TO as smtp-server parsed them (KEY=value, or a bare KEY: true). */
export type Params = Record<string, string | true>;

/** What the connect-time reputation lookup found; taken at connect, delivered at RCPT. */
export type ClientReputation =
  | { kind: 'clean' }
  /** The reputation service's verdict (reject, defer, tag, or nothing to do). */
  | { kind: 'verdict'; verdict: reputation.Verdict }
  | { kind: 'error'; refuse: boolean; error: string };

/** One mail transaction: MAIL FROM up to the end of DATA, RSET, HELO/EHLO or STARTTLS. */
export class Transaction {
  /** Recipients accepted so far (their RCPT got 250). */
  readonly recipients: string[] = [];
  /** Sender domain whose SPF authorizes the client; "" otherwise. */
  spfPassDomain = '';
  /** Longest greylisting delay of the recipients, for the X-Greylist header. */
  greylistDelay = 0;
  /** Header fields checks added (Authentication-Results, ...), written above the trace headers. */
  readonly headers: string[] = [];
  /** The next hop's side of this transaction, opened at the first recipient. */
  hop: HopTransaction | undefined;
  /** Queue id of the message (Received header, spool file name, decisions, the 250 reply). */
  readonly messageId = newMessageId();
  /** What the directory says about the sender (auth.ResolveSender at MAIL); unset when not looked up. */
  senderInfo: auth.ResolveSenderResponse | undefined;

  constructor(
    readonly id: string,
    /** MAIL FROM address; "" for the null sender. */
    readonly sender: string,
    readonly params: Params,
  ) {}

  /** Abandons the next hop's side; nothing is delivered. */
  abort(): void {
    this.hop?.abort();
    this.hop = undefined;
  }
}

/** One recipient while the RCPT checks run. */
export class RecipientState {
  /** The directory says the address is served here (mailbox, alias, list, catch-all). */
  local = false;
  constructor(
    readonly address: string,
    readonly params: Params,
  ) {}
}

/** smtpguard's view of one SMTP connection. */
export class Session {
  /** Verified reverse DNS name of the client (FCrDNS); "" when unknown. */
  clientHostname = '';
  /** HELO/EHLO argument; "" before it (and after STARTTLS). */
  helo = '';
  tls = false;
  /** Account after SMTP AUTH; "" otherwise. */
  user = '';
  /** Entry of edge.trustedNetworks that matched the client (IP at connect, host name at MAIL); "" when none. */
  trustedRule = '';
  /** Account whose POP3/IMAP login authorizes the current transaction (POP-before-SMTP); "" when none. */
  popAccount = '';
  /** The connect-time lookup of reputation.CheckClient (DNS block/allow lists, FCrDNS). */
  reputation: Promise<ClientReputation> | undefined;
  /** The client is on a DNS allow list (set when the connect lookup finished). */
  dnswlListed = false;
  /** Header fields of HELO verdicts (a tagged HELO name) that every transaction of the session gets. */
  heloHeaders: string[] = [];
  tx: Transaction | undefined;
  transactions = 0;
  /** 5xx replies since the last accepted message (edge.limits.maxErrors). */
  errors = 0;
  /** Counted by the connection limits; released when the connection closes. */
  admitted = false;
  /** A trusted load balancer's own connection (PROXY v2 LOCAL or v1 UNKNOWN: its health check). */
  loadBalancer = false;
  readonly startedAt = Date.now();
  span: Span | undefined;
  ctx: Context | undefined;

  constructor(
    readonly id: string,
    readonly listener: ListenerName,
    readonly clientIp: string,
    readonly clientPort: number,
    readonly edgeInstance: string,
    readonly hostname: string,
  ) {}

  /**
   * The one definition of "authorized" (relay, greylisting, DNSBL, submission, local senders): SMTP AUTH
   * succeeded, or the client is trusted (IP rule, or host name on its verified reverse name), or a
   * POP-before-SMTP entry exists for this IP (and, where configured, this sender).
   */
  get authorized(): boolean {
    return Boolean(this.user || this.trustedRule || this.popAccount);
  }

  /** The account whose rights apply: the SMTP AUTH user, else the POP-before-SMTP account; "" for none. */
  get account(): string {
    return this.user || this.popAccount;
  }

  beginTransaction(sender: string, params: Params): Transaction {
    this.endTransaction();
    // POP-before-SMTP is decided per transaction (the entry may expire, and may depend on the sender).
    this.popAccount = '';
    this.transactions += 1;
    this.tx = new Transaction(`${this.id}.${this.transactions}`, sender, params);
    this.tx.headers.push(...this.heloHeaders);
    return this.tx;
  }

  endTransaction(): void {
    this.tx?.abort();
    this.tx = undefined;
  }

  /** RFC 3207 4.2: after STARTTLS, everything the client said before is forgotten. */
  resetToGreeting(): void {
    this.endTransaction();
    this.helo = '';
    this.heloHeaders = [];
    this.user = '';
    this.popAccount = '';
  }
}

export function sessionContext(s: Session): common.SessionContext {
  return common.SessionContext.fromPartial({
    sessionId: s.id,
    transactionId: s.tx?.id ?? '',
    clientIp: s.clientIp,
    clientPort: s.clientPort,
    clientHostname: s.clientHostname,
    helo: s.helo,
    sender: s.tx?.sender ?? '',
    authenticatedUser: s.user,
    listener: LISTENERS[s.listener],
    tls: s.tls,
    trusted: Boolean(s.trustedRule),
    edgeInstance: s.edgeInstance,
  });
}

/** Values a reason's texts can name ({client_ip}, {sender}, ...). */
export function sessionVars(s: Session): Vars {
  return {
    session_id: s.id,
    reference: referenceOf(s.id),
    client_ip: s.clientIp,
    helo: s.helo,
    sender: s.tx?.sender,
    user: s.user,
    listener: s.listener,
    hostname: s.hostname,
  };
}
