import type { PhaseName } from '@smtpguard/decisions';
import type { ReasonCode, Vars } from '@smtpguard/reasons';

/**
 * smtp-server's own replies (pinned at 3.21.6), each translated into a catalog reason: the edge sends the
 * catalog's reply (its code, enhanced code and words) instead, and a refusal becomes a decision. The table is
 * matched on smtp-server's reply code and text; `native-replies.test.ts` reads every `send(...)` of the pinned
 * smtp-server and fails when one of them is not covered here, and the end-to-end tests assert the wire replies,
 * so an upgrade of smtp-server that changes a reply cannot pass unnoticed.
 */
export interface NativeRule {
  code: number;
  text: RegExp;
  reason: ReasonCode;
  /** Values for the reason's texts, from the match and the command line being answered. */
  vars?: (m: RegExpExecArray, line: string) => Vars;
  /** The decision's phase when it is not the phase of the command being answered. */
  phase?: PhaseName;
}

const param = (name: string) => () => ({ parameter: name });
const declaredSize = (_m: RegExpExecArray, line: string) => ({ size: /\bSIZE=(\d+)/i.exec(line)?.[1] });

export const NATIVE_RULES: readonly NativeRule[] = [
  // Positive replies: the catalog's words, no decision (the checks that let the command pass recorded theirs).
  { code: 220, text: /^Ready to start TLS$/, reason: 'protocol.tls_ready' },
  { code: 220, text: / (?:ESMTP|LMTP)\b/, reason: 'connect.greeting', phase: 'connect' },
  { code: 250, text: /^OK$/, reason: 'protocol.ok' },
  { code: 250, text: /^Flushed$/, reason: 'protocol.reset' },
  { code: 214, text: /./, reason: 'protocol.help' },
  { code: 221, text: /^Bye$/, reason: 'protocol.quit' },
  { code: 235, text: /^Authentication successful$/, reason: 'auth.ok' },
  { code: 354, text: /^End data with/, reason: 'data.start' },
  { code: 252, text: /./, reason: 'protocol.vrfy' },
  // Connection-level refusals.
  { code: 421, text: /Too many connected clients/, reason: 'connect.too_busy', phase: 'connect' },
  { code: 421, text: /You talk too soon$/, reason: 'connect.early_talker', phase: 'connect' },
  { code: 421, text: /^Error: Command line too long$/, reason: 'protocol.line_flood', phase: 'protocol' },
  { code: 421, text: /^Timeout - closing connection$/, reason: 'protocol.idle_timeout', phase: 'protocol' },
  { code: 421, text: /^Server shutting down$/, reason: 'protocol.shutting_down', phase: 'protocol' },
  { code: 421, text: /^HTTP requests not allowed$/, reason: 'protocol.http_request', phase: 'protocol' },
  {
    code: 421,
    text: /^Error: too many (?:unrecognized|unauthenticated) commands$/,
    reason: 'protocol.too_many_errors',
  },
  // Commands.
  // WIZ, SHELL and KILL are disabled (and answered as unknown before smtp-server sees them).
  {
    code: 200,
    text: /^Please pass, oh mighty wizard$/,
    reason: 'protocol.unknown_command',
    phase: 'protocol',
  },
  {
    code: 500,
    text: /^Error: command not recognized$/,
    reason: 'protocol.unknown_command',
    phase: 'protocol',
  },
  { code: 500, text: /not allowed in LMTP server$/, reason: 'protocol.unknown_command', phase: 'protocol' },
  {
    code: 500,
    text: /^(?:You are no wizard!|Mere mortals|Error: Invoking shell|Can not kill Mom)/,
    reason: 'protocol.unknown_command',
    phase: 'protocol',
  },
  { code: 503, text: /^Error: send (?:HELO\/EHLO|LHLO) first$/, reason: 'protocol.helo_required' },
  { code: 451, text: /^Error: internal server error$/, reason: 'protocol.internal_error' },
  {
    code: 501,
    text: /^Error: duplicate (\S+) parameter$/,
    reason: 'protocol.bad_parameter',
    vars: (m) => ({ parameter: m[1], error: 'given twice' }),
  },
  {
    code: 501,
    text: /^Error: (\S+) parameter requires a value$/,
    reason: 'protocol.bad_parameter',
    vars: (m) => ({ parameter: m[1], error: 'no value' }),
  },
  { code: 501, text: /^Error: syntax: (?:EHLO|LHLO) hostname$/i, reason: 'helo.invalid' },
  { code: 501, text: /^Error: Syntax: HELO hostname$/i, reason: 'helo.invalid' },
  { code: 501, text: /^Error: Bad hostname syntax$/, reason: 'helo.invalid' },
  {
    code: 501,
    text: /^Error: Syntax: VRFY address$/,
    reason: 'protocol.bad_syntax',
    vars: () => ({ usage: 'VRFY address' }),
  },
  {
    code: 501,
    text: /^Error: syntax: STARTTLS$/,
    reason: 'protocol.bad_syntax',
    vars: () => ({ usage: 'STARTTLS' }),
  },
  { code: 503, text: /^Error: TLS already active$/, reason: 'protocol.tls_active' },
  // XCLIENT and XFORWARD are disabled; their replies are mapped all the same.
  { code: 550, text: /^Error: Not allowed$/, reason: 'protocol.not_implemented', phase: 'protocol' },
  { code: 503, text: /^Error: Mail transaction in progress$/, reason: 'mail.nested' },
  {
    code: 501,
    text: /^Error: Bad command parameter syntax/,
    reason: 'protocol.bad_syntax',
    vars: () => ({ usage: 'XCLIENT attribute=value ...' }),
  },
  // AUTH.
  { code: 538, text: /^Error: Must issue a STARTTLS command first$/, reason: 'auth.tls_required' },
  { code: 503, text: /^Error: No identity changes permitted$/, reason: 'auth.already_authenticated' },
  {
    code: 504,
    text: /^Error: Unrecognized authentication type$/,
    reason: 'auth.mechanism_unsupported',
    vars: (_m, line) => ({ mechanism: line.split(/\s+/)[1] ?? '' }),
  },
  { code: 501, text: /^Authentication aborted$/, reason: 'auth.cancelled' },
  {
    code: 501,
    text: /^Error: syntax: AUTH /,
    reason: 'auth.bad_syntax',
    vars: () => ({ error: 'wrong number of arguments' }),
  },
  {
    code: 501,
    text: /^Error: invalid userdata$/,
    reason: 'auth.bad_syntax',
    vars: () => ({ error: 'invalid user data' }),
  },
  {
    code: 501,
    text: /^Error: missing username$/,
    reason: 'auth.bad_syntax',
    vars: () => ({ error: 'no user name' }),
  },
  {
    code: 535,
    text: /^Error: (?:Authentication credentials invalid|Username and Password not accepted)$/,
    reason: 'auth.bad_credentials',
  },
  // MAIL FROM.
  { code: 501, text: /^Error: Bad sender address syntax$/, reason: 'mail.bad_address' },
  { code: 503, text: /^Error: nested MAIL command$/, reason: 'mail.nested' },
  {
    code: 501,
    text: /^Error: Bad message size syntax$/,
    reason: 'protocol.bad_parameter',
    vars: () => ({ parameter: 'SIZE', error: 'not a number' }),
  },
  {
    code: 552,
    text: /^Error: message exceeds fixed maximum message size (\d+)$/,
    reason: 'mail.size_exceeded',
    vars: (m, line) => ({ ...declaredSize(m, line), max_bytes: m[1] }),
  },
  {
    code: 501,
    text: /^Invalid BODY parameter value/,
    reason: 'protocol.bad_parameter',
    vars: () => ({ parameter: 'BODY', error: 'must be 7BIT or 8BITMIME' }),
  },
  {
    code: 501,
    text: /^Invalid SMTPUTF8 parameter/,
    reason: 'protocol.bad_parameter',
    vars: () => ({ parameter: 'SMTPUTF8', error: 'takes no value' }),
  },
  // REQUIRETLS (RFC 8689) and DSN (RFC 3461) are not offered, whatever smtp-server checks of them.
  {
    code: 530,
    text: /^REQUIRETLS not permitted/,
    reason: 'mail.unknown_parameter',
    vars: param('REQUIRETLS'),
  },
  {
    code: 501,
    text: /^Invalid REQUIRETLS parameter/,
    reason: 'mail.unknown_parameter',
    vars: param('REQUIRETLS'),
  },
  { code: 501, text: /^Invalid RET parameter value/, reason: 'mail.unknown_parameter', vars: param('RET') },
  { code: 530, text: /authentication Required$/, reason: 'submission.auth_required' },
  // RCPT TO.
  { code: 501, text: /^Error: Bad recipient address syntax$/, reason: 'rcpt.bad_address' },
  { code: 503, text: /^Error: need MAIL command$/, reason: 'rcpt.need_mail' },
  { code: 501, text: /^Error: NOTIFY/, reason: 'rcpt.unknown_parameter', vars: param('NOTIFY') },
  {
    code: 501,
    text: /^Error: Bad ORCPT parameter syntax$/,
    reason: 'rcpt.unknown_parameter',
    vars: param('ORCPT'),
  },
  { code: 452, text: /^Error: too many recipients$/, reason: 'rcpt.too_many' },
  // DATA.
  { code: 503, text: /^Error: need RCPT command$/, reason: 'data.need_rcpt' },
];

/** The rule for one of smtp-server's replies, or undefined when the table does not cover it. */
export function nativeRule(
  code: number,
  text: string,
): { rule: NativeRule; match: RegExpExecArray } | undefined {
  for (const rule of NATIVE_RULES) {
    if (rule.code !== code) continue;
    const match = rule.text.exec(text);
    if (match) return { rule, match };
  }
  return undefined;
}
