import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

/** One entry of catalog/reasons.yaml. */
export interface Reason {
  code: string;
  summary: string;
  reply?: Reply;
  happened: string;
  resolve: string;
  seeAlso?: string[];
}

export interface Reply {
  code: number;
  enhanced: string;
  text: string;
}

export type Vars = Record<string, string | number | undefined>;

const catalogUrl = new URL('../catalog/reasons.yaml', import.meta.url);

function load(): Map<string, Reason> {
  const raw = parse(readFileSync(catalogUrl, 'utf8')) as Record<string, Omit<Reason, 'code'>>;
  const map = new Map<string, Reason>();
  for (const [code, entry] of Object.entries(raw)) {
    if (entry.reply) entry.reply = { ...entry.reply, enhanced: String(entry.reply.enhanced) };
    map.set(code, { code, ...entry });
  }
  return map;
}

const catalog = load();

export function allReasons(): Reason[] {
  return [...catalog.values()];
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

/** The SMTP reply for a refusing or deferring reason, with the session's values filled in. */
export function replyFor(code: string, vars: Vars): Reply {
  const r = reason(code);
  if (!r.reply) throw new Error(`reason "${code}" has no reply: it never refuses`);
  // Values from the client end up in the reply: keep them on one line.
  const text = render(r.reply.text, vars).replace(/[\r\n]+/g, ' ');
  return { code: r.reply.code, enhanced: r.reply.enhanced, text };
}

/** Formats an entry for people (smtpguard explain). */
export function explain(code: string, vars: Vars = {}): string {
  const r = reason(code);
  const lines = [`${r.code}: ${r.summary}`];
  if (r.reply) lines.push(`  reply:    ${r.reply.code} ${r.reply.enhanced} ${render(r.reply.text, vars)}`);
  lines.push(`  happened: ${render(r.happened, vars)}`, `  resolve:  ${render(r.resolve, vars)}`);
  if (r.seeAlso?.length) lines.push(`  see also: ${r.seeAlso.join('; ')}`);
  return lines.join('\n');
}
