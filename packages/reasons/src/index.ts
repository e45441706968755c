import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { REASON_CODES, type ReasonCode } from './codes.gen.js';

export { REASON_CODES, type ReasonCode } from './codes.gen.js';

/** One entry of catalog/reasons.yaml. */
export interface Reason {
  code: ReasonCode;
  summary: string;
  reply?: Reply;
  happened: string;
  resolve: string;
  seeAlso?: string[];
}

export interface Reply {
  code: number;
  /** RFC 3463 enhanced code; "" for the replies that carry none (greeting, EHLO/HELO, 3xx; RFC 2034). */
  enhanced: string;
  text: string;
}

export type Vars = Record<string, string | number | undefined>;

const catalogUrl = new URL('../catalog/reasons.yaml', import.meta.url);

/** Wording every reply shares: the catalog's keys that start with "_". */
interface Shared {
  /** Appended to refusals when the session has a reference. */
  _reference: string;
}

let shared: Shared = { _reference: '' };

function load(): Map<string, Reason> {
  const raw = parse(readFileSync(catalogUrl, 'utf8')) as Record<string, Omit<Reason, 'code'>>;
  const map = new Map<string, Reason>();
  shared = { _reference: String((raw as unknown as Shared)._reference ?? '') };
  for (const [code, entry] of Object.entries(raw)) {
    if (code.startsWith('_')) continue;
    if (entry.reply) entry.reply = { ...entry.reply, enhanced: String(entry.reply.enhanced ?? '') };
    map.set(code, { code: code as ReasonCode, ...entry });
  }
  return map;
}

const catalog = load();

export function allReasons(): Reason[] {
  return [...catalog.values()];
}

export function isReasonCode(code: string): code is ReasonCode {
  return catalog.has(code);
}

export function reason(code: string): Reason {
  const r = catalog.get(code);
  if (!r) throw new Error(`unknown reason code "${code}" (not in catalog/reasons.yaml)`);
  return r;
}

/** Fills {name} placeholders; a value that is missing shows as "(unknown)", as GMS does. */
export function render(template: string, vars: Vars): string {
  return template.replace(/\{([a-z_]+)\}/g, (_, k: string) => {
    const v = vars[k];
    return v === undefined || v === '' ? '(unknown)' : String(v);
  });
}

/** Control characters (CR, LF, NUL, ...) become spaces: a reply is one line of text. */
function oneLine(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    out += c < 0x20 || c === 0x7f ? ' ' : ch;
  }
  return out.replace(/ {2,}/g, ' ');
}

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}$/;

/**
 * The SMTP reply of a reason, with the session's values filled in. `override` carries another server's code
 * and enhanced code (the next hop's answer passed on), or an administrator's own (a DNS list's replyCode); it
 * is used only when it is of the catalog reply's class (4xx stays 4xx, 5xx stays 5xx), so a reason never turns
 * a refusal into an acceptance or the reverse. `override.text` is an administrator's own wording from the
 * config (a DNS list's replyText, hMailServer's custom message), rendered with the same {vars}.
 */
export function replyFor(
  code: string,
  vars: Vars,
  override?: { code?: number; enhanced?: string; text?: string },
): Reply {
  const r = reason(code);
  if (!r.reply) throw new Error(`reason "${code}" has no reply`);
  // Values from the client (or the next hop) end up in the reply: keep them on one line. An administrator's
  // own words (auth.localSenders.message, a DNS list's replyText) replace the catalog's text when given; their
  // {placeholders} are filled in the same way.
  let text = oneLine(render(override?.text || r.reply.text, vars));
  // Every refusal of a session ends with its reference, so the sender can quote it (`smtpguard why`).
  if (r.reply.code >= 400 && vars.reference) text += oneLine(render(shared._reference, vars));
  const cls = Math.floor(r.reply.code / 100);
  const replyCode =
    override?.code && Math.floor(override.code / 100) === cls && override.code < 600
      ? override.code
      : r.reply.code;
  const enhanced =
    override?.enhanced && ENHANCED.test(override.enhanced) && override.enhanced[0] === String(cls)
      ? override.enhanced
      : r.reply.enhanced;
  return { code: replyCode, enhanced, text };
}

/** The reference of a session (what refusals end with): the last 8 characters of its id. */
export function referenceOf(sessionId: string): string {
  return sessionId.slice(-8);
}

/** Finds the reference in a reply text as a sender quotes it ("... (ref 0k3v9q2m)"); undefined when none. */
export function referenceIn(text: string): string | undefined {
  const [before = '', after = ''] = shared._reference.split('{reference}');
  const esc = (s: string) => s.trim().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`${esc(before)}\\s*([0-9a-z]{8})\\s*${esc(after)}`).exec(text);
  return m?.[1];
}

/** The reply as sent on the wire, without CRLF: "550 5.7.1 Relaying denied ...". */
export function formatReply(reply: Reply): string {
  return reply.enhanced ? `${reply.code} ${reply.enhanced} ${reply.text}` : `${reply.code} ${reply.text}`;
}

/** Formats an entry for people (smtpguard explain). */
export function explain(code: string, vars: Vars = {}): string {
  const r = reason(code);
  const lines = [`${r.code}: ${r.summary}`];
  if (r.reply) lines.push(`  reply:    ${formatReply({ ...r.reply, text: render(r.reply.text, vars) })}`);
  lines.push(`  happened: ${render(r.happened, vars)}`, `  resolve:  ${render(r.resolve, vars)}`);
  if (r.seeAlso?.length) lines.push(`  see also: ${r.seeAlso.join('; ')}`);
  return lines.join('\n');
}

// The generated list and the catalog file are the same set (the generator reads the file; this guards a
// catalog edited without regenerating when the drift check is not run).
if (REASON_CODES.length !== catalog.size) {
  throw new Error('catalog/reasons.yaml and src/codes.gen.ts differ: run `pnpm reasons:gen`');
}
