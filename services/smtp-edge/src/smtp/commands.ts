import { CORE_COMMANDS, OPTIONAL_COMMANDS } from '@smtpguard/config';

/** What the edge does with a command verb before smtp-server sees it. */
export type CommandClass = 'core' | 'optional' | 'disallowed' | 'not-implemented' | 'unknown';

const CORE = new Set<string>(CORE_COMMANDS);
// Allowed or not by edge.protocol.allowedCommands.
const OPTIONAL = new Set<string>(OPTIONAL_COMMANDS);
// Never offered: they disclose addresses (EXPN) or turn the connection around (TURN, ETRN, ATRN).
const DISALLOWED = new Set(['EXPN', 'TURN', 'ETRN', 'ATRN']);
// SMTP commands (RFC 821, 5321 extensions, LMTP, Postfix) this server does not implement.
const NOT_IMPLEMENTED = new Set([
  'SEND',
  'SOML',
  'SAML',
  'BDAT',
  'XCLIENT',
  'XFORWARD',
  'LHLO',
  'BURL',
  'XEXCH50',
]);

export function classify(verb: string): CommandClass {
  if (CORE.has(verb)) return 'core';
  if (OPTIONAL.has(verb)) return 'optional';
  if (DISALLOWED.has(verb)) return 'disallowed';
  if (NOT_IMPLEMENTED.has(verb)) return 'not-implemented';
  return 'unknown';
}

/** Commands that need HELO/EHLO first (RFC 5321 4.1.4). */
export const NEEDS_HELO = new Set(['MAIL', 'RCPT', 'DATA', 'AUTH']);

// Cross-protocol requests (a web page posting to port 25, scanners); smtp-server closes those.
export const HTTP_REQUEST = /^(OPTIONS|GET|HEAD|POST|PUT|DELETE|TRACE|CONNECT) \/.* HTTP\/\d\.\d$/i;
