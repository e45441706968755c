import { type LoadedConfig, loadConfig } from '@smtpguard/config';
import { common, events } from '@smtpguard/contracts';
import { readDecisionFile, readDecisionStream, type Window } from '@smtpguard/decisions';
import { isReasonCode, reason, referenceIn, referenceOf, render, type Vars } from '@smtpguard/reasons';
import { takeFlag } from './flags.js';

export const whyUsage = `  why REFERENCE|MESSAGE-ID|IP|SENDER [--since T] [--until T] [--all] [--json]
                             the decisions of the sessions a refusal reference (or a message id, client IP,
                             sender) names: what happened, the reply sent, what to change; --all: every decision
  log [--since T] [--until T] [--reason R] [--client IP] [--sender S] [--recipient R] [--json]
                             refusals (4xx/5xx) of a time window (default: the last hour), one a line
    (decisions: the JetStream stream nats.decisionStream when nats.url is set, else the decisions file;
     T: ISO time or an age such as 30m, 2h, 7d)`;

/** "30m", "2h", "7d" before now, or an ISO time. */
export function parseTime(value: string, now = Date.now()): Date {
  const age = /^(\d+)([smhd])$/.exec(value);
  if (age) {
    const unit = { s: 1, m: 60, h: 3600, d: 86400 }[age[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now - Number(age[1]) * unit * 1000);
  }
  const t = new Date(value);
  if (Number.isNaN(t.getTime())) throw new UsageError(`not a time: ${value} (ISO time, or an age like 2h)`);
  return t;
}

export class UsageError extends Error {}

/** Where the decisions are: the stream with NATS, else the file. */
async function decisionsOf(loaded: LoadedConfig, window: Window): Promise<events.Decision[]> {
  const { nats, decisions } = loaded.config;
  if (nats.url) {
    return readDecisionStream(
      {
        servers: nats.url.split(',').map((s) => s.trim()),
        stream: nats.decisionStream,
        connectTimeoutMs: nats.connectTimeoutMs,
      },
      window,
    );
  }
  return readDecisionFile(loaded.statePath(decisions.file), window);
}

const refused = (d: events.Decision) => (d.reply?.code ?? 0) >= 400;
const phaseName = (p: events.Phase) =>
  events
    .phaseToJSON(p)
    .replace(/^PHASE_/, '')
    .toLowerCase();
const outcomeName = (o: events.Outcome) =>
  events
    .outcomeToJSON(o)
    .replace(/^OUTCOME_/, '')
    .toLowerCase();
const wire = (d: events.Decision) =>
  d.reply ? [d.reply.code, d.reply.enhancedCode, d.reply.text].filter(Boolean).join(' ') : '';

/** The values a catalog text names, from what the decision recorded. */
function varsOf(d: events.Decision): Vars {
  const s = d.session ?? common.SessionContext.fromPartial({});
  const sender = s.sender;
  return {
    session_id: s.sessionId,
    reference: referenceOf(s.sessionId),
    client_ip: s.clientIp,
    helo: s.helo,
    sender,
    user: s.authenticatedUser,
    account: s.authenticatedUser || sender,
    domain: sender.includes('@') ? sender.split('@').pop() : undefined,
    listener: common
      .listenerToJSON(s.listener)
      .replace(/^LISTENER_/, '')
      .toLowerCase(),
    recipient: d.recipient,
    message_id: d.messageId,
    ...d.attributes,
  };
}

/** One decision for people and for --json. */
function describe(d: events.Decision) {
  const known = isReasonCode(d.reasonCode);
  const vars = varsOf(d);
  const s = d.session;
  return {
    time: d.time?.toISOString() ?? '',
    service: d.service,
    phase: phaseName(d.phase),
    check: d.check,
    outcome: outcomeName(d.outcome),
    reason: d.reasonCode,
    summary: known ? reason(d.reasonCode).summary : '',
    reply: wire(d),
    happened: d.detail || (known ? render(reason(d.reasonCode).happened, vars) : ''),
    resolve: known ? render(reason(d.reasonCode).resolve, vars) : '',
    session: s?.sessionId ?? '',
    reference: referenceOf(s?.sessionId ?? ''),
    client_ip: s?.clientIp ?? '',
    helo: s?.helo ?? '',
    sender: s?.sender ?? '',
    recipient: d.recipient,
    message_id: d.messageId,
    user: s?.authenticatedUser ?? '',
    trace_id: d.traceId,
    attributes: d.attributes,
  };
}

/** Whether a decision belongs to what the query names. */
function matcher(query: string): (d: events.Decision) => boolean {
  const q = (referenceIn(query) ?? query).trim().toLowerCase();
  return (d) => {
    const s = d.session;
    if (!s) return false;
    const id = s.sessionId.toLowerCase();
    return (
      id === q ||
      (q.length >= 8 && id.endsWith(q)) ||
      d.messageId.toLowerCase() === q ||
      s.clientIp === q ||
      s.sender.toLowerCase() === q
    );
  };
}

interface Options {
  since?: string;
  until?: string;
  json: boolean;
  all: boolean;
  filters: { reason?: string; client?: string; sender?: string; recipient?: string };
}

/** Takes `--name VALUE` and flags out of args. */
function options(args: string[]): Options {
  const take = (name: string) => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
    args.splice(i, 2);
    return v;
  };
  const flag = (name: string) => takeFlag(args, name);
  return {
    since: take('--since'),
    until: take('--until'),
    json: flag('--json'),
    all: flag('--all'),
    filters: {
      reason: take('--reason'),
      client: take('--client'),
      sender: take('--sender'),
      recipient: take('--recipient'),
    },
  };
}

function windowOf(o: Options, defaultSince?: string): Window {
  const since = o.since ?? defaultSince;
  return { since: since ? parseTime(since) : undefined, until: o.until ? parseTime(o.until) : undefined };
}

/** `smtpguard why QUERY`. Exit 0 when decisions were found, 1 when none. */
export async function whyCommand(
  args: string[],
  configPath: string,
  out: (line: string) => void,
): Promise<number> {
  const o = options(args);
  const [query] = args;
  if (!query) throw new UsageError('why needs a reference, message id, client IP or sender');
  const loaded = await loadConfig(configPath);
  const all = await decisionsOf(loaded, windowOf(o));
  const matches = matcher(query);
  // Everything the matching sessions decided: a message id or a sender names a transaction, but what led to a
  // refusal may have been decided earlier in the session (the DNSBL verdict at connect).
  const sessions = new Set(all.filter(matches).map((d) => d.session?.sessionId ?? ''));
  const found = all.filter((d) => sessions.has(d.session?.sessionId ?? ''));
  const shown = o.all ? found : found.filter((d) => refused(d) || outcomeName(d.outcome) === 'error');
  const bySession = new Map<string, ReturnType<typeof describe>[]>();
  for (const d of shown) {
    const list = bySession.get(d.session?.sessionId ?? '') ?? [];
    list.push(describe(d));
    bySession.set(d.session?.sessionId ?? '', list);
  }
  if (o.json) {
    out(
      JSON.stringify(
        [...bySession].map(([session, decisions]) => ({
          session,
          reference: referenceOf(session),
          decisions,
        })),
      ),
    );
  } else if (!bySession.size) {
    out(
      sessions.size
        ? `${query}: sessions found, but nothing was refused (--all shows every decision)`
        : `${query}: no decisions found`,
    );
  } else {
    for (const [session, decisions] of bySession) {
      const first = decisions[0];
      out(
        `session ${session} (ref ${referenceOf(session)}) from ${first?.client_ip}${first?.helo ? ` (HELO ${first.helo})` : ''}`,
      );
      for (const d of decisions) {
        out(
          `  ${d.time}  ${d.phase}/${d.check}: ${d.outcome} ${d.reason}${d.summary ? ` — ${d.summary}` : ''}`,
        );
        if (d.sender || d.recipient)
          out(`    sender:   ${d.sender || '<>'}${d.recipient ? `  recipient: ${d.recipient}` : ''}`);
        if (d.reply) out(`    reply:    ${d.reply}`);
        out(`    happened: ${d.happened}`);
        if (d.resolve) out(`    resolve:  ${d.resolve}`);
        if (d.trace_id) out(`    trace:    ${d.trace_id}`);
      }
    }
  }
  return sessions.size ? 0 : 1;
}

/** `smtpguard log`: refusals of a window, one a line. Exit 0. */
export async function logCommand(
  args: string[],
  configPath: string,
  out: (line: string) => void,
): Promise<number> {
  const o = options(args);
  if (args.length) throw new UsageError(`log takes no argument: ${args.join(' ')}`);
  const loaded = await loadConfig(configPath);
  const f = o.filters;
  const rows = (await decisionsOf(loaded, windowOf(o, '1h')))
    .filter(refused)
    .filter((d) => !f.reason || d.reasonCode === f.reason || d.reasonCode.startsWith(`${f.reason}.`))
    .filter((d) => !f.client || d.session?.clientIp === f.client)
    .filter((d) => !f.sender || d.session?.sender.toLowerCase() === f.sender.toLowerCase())
    .filter((d) => !f.recipient || d.recipient.toLowerCase() === f.recipient.toLowerCase())
    .map(describe);
  if (o.json) {
    out(JSON.stringify(rows));
    return 0;
  }
  for (const r of rows) {
    out(
      [
        r.time,
        r.reference,
        r.client_ip,
        r.sender || '<>',
        r.recipient || '-',
        r.reply.slice(0, 3),
        r.reason,
      ].join('\t'),
    );
  }
  return 0;
}
