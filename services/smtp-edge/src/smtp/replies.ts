import type { Reply } from '@smtpguard/reasons';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

/**
 * The one place where SMTP wording meets smtp-server.
 *
 * smtp-server adds an RFC 3463 enhanced code derived from the basic reply code alone (550 -> 5.1.1), which is
 * wrong for policy refusals (relay denied is 550 5.7.1). Our replies carry their own enhanced code at the
 * start of the text; this patch makes smtp-server send such a text as it is, and keep adding its own code to
 * every other reply (its syntax and sequence errors), so every reply has exactly one enhanced code.
 */
const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
type Send = (code: number, data: unknown, context?: unknown) => void;
const proto = SMTPConnection.prototype as unknown as { send: Send; __smtpguardPatched?: boolean };
if (!proto.__smtpguardPatched) {
  const original = proto.send;
  proto.send = function send(this: unknown, code, data, context) {
    const own = typeof data === 'string' && ENHANCED.test(data);
    return original.call(this, code, data, own ? false : context);
  };
  proto.__smtpguardPatched = true;
}

/** An error smtp-server turns into the reply (responseCode + our text with its enhanced code). */
export interface SmtpReplyError extends Error {
  responseCode: number;
  reply: Reply;
}

export function replyError(reply: Reply): SmtpReplyError {
  const err = new Error(`${reply.enhanced} ${reply.text}`) as SmtpReplyError;
  err.responseCode = reply.code;
  err.reply = reply;
  return err;
}

export function formatReply(reply: Reply): string {
  return `${reply.code} ${reply.enhanced} ${reply.text}`;
}
