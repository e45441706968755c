import type { ReasonCode, Reply } from '@smtpguard/reasons';

/**
 * Prefix that marks a reply text as the edge's own when it travels through smtp-server's callbacks
 * (smtp-server sends `err.message` with `err.responseCode`). EdgeConnection.send() recognizes it, strips it
 * and sends the reply as it is; any other text is smtp-server's own and is translated from the catalog. It
 * starts with a NUL, which never reaches send() from a client: smtp-server refuses control characters in
 * everything a client sends, and replyFor() removes them from filled-in values.
 */
export const OWN_REPLY = '\u0000smtpguard\u0000';

/** A refusal (or a reply) from the catalog, thrown by the runner and turned into the SMTP reply. */
export class ReplyError extends Error {
  /** smtp-server reads the reply code from here. */
  readonly responseCode: number;

  constructor(
    readonly reply: Reply,
    readonly reason: ReasonCode,
    /** Close the connection after the reply. */
    readonly close = false,
  ) {
    super(ownText(reply));
    this.name = 'ReplyError';
    this.responseCode = reply.code;
  }
}

/** The reply text as sent after the code: enhanced code (when there is one) and text. */
export function wireText(reply: Reply): string {
  return reply.enhanced ? `${reply.enhanced} ${reply.text}` : reply.text;
}

/** The text smtp-server is given for one of the edge's replies: the marker, then the wire text. */
export function ownText(reply: Reply): string {
  return OWN_REPLY + wireText(reply);
}

export function isReplyError(err: unknown): err is ReplyError {
  return err instanceof ReplyError;
}
