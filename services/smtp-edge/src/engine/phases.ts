import { authenticate } from '../checks/auth/authenticate.js';
import { clientReputation } from '../checks/connect/client-reputation.js';
import { connectionLimits } from '../checks/connect/connection-limits.js';
import { trustedNetwork } from '../checks/connect/trusted-network.js';
import { hopCount } from '../checks/data/hop-count.js';
import { lineEndings } from '../checks/data/line-endings.js';
import { lineLength } from '../checks/data/line-length.js';
import { messageAuth } from '../checks/data/message-auth.js';
import { messageSize } from '../checks/data/message-size.js';
import { uribl } from '../checks/data/uribl.js';
import { heloFqdn } from '../checks/helo/helo-fqdn.js';
import { heloHost } from '../checks/helo/helo-host.js';
import { heloLiteral } from '../checks/helo/helo-literal.js';
import { heloSyntax } from '../checks/helo/helo-syntax.js';
import { accountRecheck } from '../checks/mail/account-recheck.js';
import { emptySender } from '../checks/mail/empty-sender.js';
import { mailParams } from '../checks/mail/mail-params.js';
import { popBeforeSmtp } from '../checks/mail/pop-before-smtp.js';
import { sender } from '../checks/mail/sender.js';
import { senderDomain } from '../checks/mail/sender-domain.js';
import { sendingLimit } from '../checks/mail/sending-limit.js';
import { spf } from '../checks/mail/spf.js';
import { submissionAuth } from '../checks/mail/submission-auth.js';
import { trustedHost } from '../checks/mail/trusted-host.js';
import { delivery } from '../checks/queue/delivery.js';
import { dnsbl } from '../checks/rcpt/dnsbl.js';
import { greylist } from '../checks/rcpt/greylist.js';
import { hopRecipientLimit } from '../checks/rcpt/hop-recipient-limit.js';
import { localOnly } from '../checks/rcpt/local-only.js';
import { nextHopRecipient } from '../checks/rcpt/next-hop-recipient.js';
import { rcptParams } from '../checks/rcpt/rcpt-params.js';
import { recipient } from '../checks/rcpt/recipient.js';
import { recipientCount } from '../checks/rcpt/recipient-count.js';
import { recipientQuota } from '../checks/rcpt/recipient-quota.js';
import { relay } from '../checks/rcpt/relay.js';
import type { PhaseLists } from './runner.js';

/**
 * The edge's policy: each phase's checks, in the order they run. A refusal ends the phase. Adding a check is
 * one module in src/checks and one line here; docs/checks.md lists them with their settings and failure modes.
 */
export const PHASES: PhaseLists = {
  // At accept time, before the greeting delay: nothing is spent on a client the limits refuse.
  connect: [connectionLimits, trustedNetwork, clientReputation],
  helo: [heloSyntax, heloFqdn, heloLiteral, heloHost],
  auth: [authenticate],
  // Who is sending is settled first (account re-check, trusted host name, POP-before-SMTP), so that submission
  // and the sender checks see the one definition of "authorized" (Session.authorized).
  mail: [
    mailParams,
    emptySender,
    accountRecheck,
    trustedHost,
    popBeforeSmtp,
    submissionAuth,
    sender,
    sendingLimit,
    senderDomain,
    spf,
  ],
  rcpt: [
    rcptParams,
    recipientCount,
    hopRecipientLimit,
    recipient,
    relay,
    localOnly,
    recipientQuota,
    dnsbl,
    greylist,
    nextHopRecipient,
  ],
  // At the end of the message, on the facts the inspector gathered while it streamed to the next hop.
  data: [messageSize, lineEndings, lineLength, hopCount, uribl, messageAuth],
  queue: [delivery],
};
