import { randomUUID } from 'node:crypto';
import type { Writable } from 'node:stream';

/**
 * The next hop as a before-queue proxy (Postfix smtpd_proxy_filter): the next hop's transaction runs
 * alongside the client's. Each recipient the client offers is offered to the next hop once smtpguard's own
 * checks passed, and the client gets the next hop's answer; the message is streamed to the next hop while
 * the client sends it; the final dot is sent only after smtpguard's end-of-data checks passed, and the
 * client's 250 is the next hop's 250. So a recipient is never told 250 for mail the next hop refused, and a
 * message the next hop accepted for some recipients is never answered 5xx. See docs/next-hop.md.
 */

/** One SMTP reply of the next hop, folded to one line. */
export interface HopReply {
  code: number;
  /** RFC 3463 enhanced code when the next hop sent one ("5.1.1"), else "". */
  enhanced: string;
  /** Reply text without code and enhanced code, multi-line replies joined with a space. */
  text: string;
}

export interface HopEnvelope {
  /** Queue id of the edge (also in the Received header). */
  id: string;
  /** MAIL FROM address; "" for the null sender. */
  from: string;
  /** The client's SIZE= declaration, if any (passed on when the next hop advertises SIZE). */
  size?: number;
  /** BODY=8BITMIME was declared (passed on when the next hop advertises 8BITMIME). */
  body8bit?: boolean;
  /** SMTPUTF8 was declared (passed on; a next hop without SMTPUTF8 refuses such a transaction). */
  smtputf8?: boolean;
}

/**
 * Why talking to the next hop failed (not a refusal: the next hop could not be reached, timed out, or the
 * connection was lost). The client is asked to retry (4xx); nothing was delivered.
 */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly reasonCode: 'queue.nexthop_failed' | 'queue.spool_failed',
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

export interface HopTransaction {
  /**
   * Offers one recipient. The first call opens the transaction at the next hop (a pooled connection,
   * MAIL FROM). Resolves with the next hop's answer to RCPT (2xx: accepted); when the next hop refused
   * MAIL FROM, every rcpt() resolves with that refusal. Rejects with DeliveryError when the next hop
   * cannot be reached.
   */
  rcpt(address: string): Promise<HopReply>;
  /**
   * Starts the message (DATA). Resolves with a Writable that takes the message bytes as received (CRLF
   * line ends, not dot-stuffed: the transaction stuffs them), or with the next hop's refusal of DATA.
   * Rejects with DeliveryError when the next hop is lost.
   */
  data(): Promise<{ stream: Writable } | { refused: HopReply }>;
  /**
   * Ends the message (after the stream was ended by the caller) and waits until the next hop has it:
   * 2xx means the next hop took responsibility. Rejects with DeliveryError when the answer is lost.
   */
  commit(): Promise<HopReply>;
  /** Abandons the transaction; nothing is delivered. Safe to call at any time and more than once. */
  abort(): void;
}

export interface NextHop {
  /** Human-readable target for decisions and logs, e.g. "smtp://10.0.0.5:25" or "spool /var/spool". */
  describe(): string;
  /**
   * Recipients per transaction the edge may accept: LMTP answers per recipient after the message, which a
   * single SMTP reply cannot carry, so the edge accepts one recipient per transaction (452 4.5.3 for more;
   * clients send the rest in another transaction). 0: no limit.
   */
  readonly maxRecipients: number;
  /** A new transaction; nothing is sent to the next hop until the first rcpt(). */
  begin(envelope: HopEnvelope): HopTransaction;
  /** Closes pooled connections. */
  close(): Promise<void>;
}

export function newMessageId(): string {
  return randomUUID().replace(/-/g, '').slice(0, 20).toUpperCase();
}
