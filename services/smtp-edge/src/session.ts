import type { Context, Span } from '@opentelemetry/api';
import { common } from '@smtpguard/contracts';

export type ListenerName = 'mx' | 'submission';

/** What the client's DNSBL lookup found; taken at connect, delivered at RCPT. */
export type DnsblVerdict =
  | { kind: 'clean' }
  | { kind: 'listed'; zone: string; answers: string }
  | { kind: 'error'; refuse: boolean; error: string };

/** smtpguard's view of one SMTP connection. */
export interface EdgeSession {
  id: string;
  listener: ListenerName;
  clientIp: string;
  clientPort: number;
  clientHostname: string;
  helo: string;
  tls: boolean;
  /** Account after SMTP AUTH; "" otherwise. */
  user: string;
  /** Entry of edge.trustedNetworks that matched the client; "" when none. */
  trustedRule: string;
  transactionId: string;
  transactionCount: number;
  sender: string;
  /** Result of reputation.CheckClient, started at connect and awaited where needed. */
  dnsbl?: Promise<DnsblVerdict>;
  /** The client is on a DNS allow list (set when the connect lookup finished). */
  dnswlListed: boolean;
  /** Sender domain whose SPF authorizes the client, for this transaction; "" otherwise. */
  spfPassDomain: string;
  /** Longest greylisting delay of this transaction's recipients, for the X-Greylist header. */
  greylistDelay: number;
  span: Span;
  ctx: Context;
  edgeInstance: string;
}

export function sessionContext(s: EdgeSession): common.SessionContext {
  return common.SessionContext.fromPartial({
    sessionId: s.id,
    transactionId: s.transactionId,
    clientIp: s.clientIp,
    clientPort: s.clientPort,
    clientHostname: s.clientHostname,
    helo: s.helo,
    sender: s.sender,
    authenticatedUser: s.user,
    listener: s.listener === 'mx' ? common.Listener.LISTENER_MX : common.Listener.LISTENER_SUBMISSION,
    tls: s.tls,
    trusted: Boolean(s.trustedRule),
    edgeInstance: s.edgeInstance,
  });
}

/** Values a reason's texts can name ({client_ip}, {sender}, ...). */
export function sessionVars(s: EdgeSession): Record<string, string> {
  return {
    session_id: s.id,
    client_ip: s.clientIp,
    helo: s.helo,
    sender: s.sender,
    user: s.user,
    listener: s.listener,
  };
}
