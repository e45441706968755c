// Resilience scenarios against a cluster (test/src/harness/cluster.ts): a bounded load of real SMTP clients
// through HAProxy while one part is killed with SIGKILL and started again, and what the system did about it.
//
// Load: `messages` messages, `concurrency` clients at a time, each a real SMTP transaction (nodemailer) on the
// MX frontend of HAProxy, each message with its own token header. A client does what a sending MTA does: a
// 4xx reply or a broken connection is tried again 200 ms later (until `deadlineMs`), a 5xx is final. A message
// counts as accepted when its DATA got 250.
//
// Probes: every 100 ms during the load, a new greylist triplet (a sender never seen) asks RCPT on the MX
// frontend. While a greylist replica is up, every such probe must be deferred (451); a probe answered 250 got
// through greylisting because a fault made the check fail open ("ungreylisted").
//
// Fault: after a third of the messages were accepted, `inject` (e.g. kill -9 of greylist-1); 3 s later, or when
// the load is done, `heal` (start it again, same config and state). Afterwards the next hop's messages and the
// decision stream are compared with what the clients and the processes saw:
//
// - lost: accepted (250) but not at the next hop; doubled: at the next hop more than once.
// - refused: a 5xx for a message of the load (all of them are valid mail).
// - failed attempts: 4xx replies and broken connections the clients had to retry; disturbance: from the fault
//   to the last such failure (0 when the fault went unnoticed by clients).
// - decisions: every decision a process logged (debug level logs each one, after it is in the process's
//   outbox journal) must reach the stream, also those of a process killed before it published them (its
//   journal is sent when it is started again); missing = logged but not in the stream within 30 s.
import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { LogLine } from '@smtpguard/launcher';
import type { Cluster } from '../harness/cluster.js';
import { RawSmtp } from '../harness/raw-smtp.js';
import { smtpSend } from '../harness/smtp-client.js';

export interface Fault {
  name: string;
  inject(cluster: Cluster): Promise<void>;
  heal(cluster: Cluster): Promise<void>;
}

export interface ScenarioOptions {
  messages: number;
  concurrency: number;
  /** The load gives up after this long (a message not accepted by then is reported as not accepted). */
  deadlineMs?: number;
}

export interface ScenarioResult {
  scenario: string;
  messages: number;
  accepted: number;
  lost: number;
  doubled: number;
  refused: number;
  failedAttempts: number;
  disturbanceMs: number;
  /** The longest a message took, from the first attempt to its 250 (retries included). */
  slowestMs: number;
  /** Accepted messages per second over the whole run. */
  perSecond: number;
  probes: number;
  ungreylisted: number;
  decisionsLogged: number;
  decisionsMissing: number;
  decisionsDoubled: number;
  /** Decisions logged by each service (one per check: the calls each service answered). */
  decisionsByService: Record<string, number>;
  seconds: number;
  /** Examples of what went wrong (replies, errors), for the report. */
  notes: string[];
}

const RETRY_MS = 200;
const SENDER = 'load@sender.test';
const RECIPIENT = 'alice@example.test';

function message(token: string): string {
  return [
    `From: <${SENDER}>`,
    `To: <${RECIPIENT}>`,
    `Subject: load ${token}`,
    `Message-ID: <${token}@sender.test>`,
    `X-Scale-Token: ${token}`,
    '',
    'A message of the resilience scenarios.',
    '',
  ].join('\r\n');
}

/** One message, tried again on 4xx and broken connections as a sending MTA would, until accepted or 5xx. */
async function deliver(
  port: number,
  token: string,
  until: number,
  failed: (at: number, why: string) => void,
): Promise<'accepted' | 'refused' | 'gave-up'> {
  for (;;) {
    const r = await smtpSend({ port, from: SENDER, to: [RECIPIENT], message: message(token) });
    if (r.code === 250) return 'accepted';
    if (r.code >= 500) {
      failed(Date.now(), `5xx ${r.response}`);
      return 'refused';
    }
    failed(Date.now(), r.code ? r.response : `connection: ${r.response}`);
    if (Date.now() + RETRY_MS > until) return 'gave-up';
    await new Promise((res) => setTimeout(res, RETRY_MS));
  }
}

/** A never-seen triplet at RCPT: the reply code, or 0 when the connection failed (not counted). */
async function probe(port: number): Promise<number> {
  let c: RawSmtp | undefined;
  try {
    const opened = await RawSmtp.open(port);
    c = opened.c;
    if (!opened.greeting.startsWith('220')) return 0;
    await c.cmd('EHLO probe.example.net');
    if (!(await c.cmd(`MAIL FROM:<probe-${randomUUID()}@probe.test>`)).startsWith('250')) return 0;
    return Number((await c.cmd(`RCPT TO:<${RECIPIENT}>`, 10_000)).slice(0, 3));
  } catch {
    return 0;
  } finally {
    await c?.quit().catch(() => undefined);
  }
}

/** Before a scenario: the load's triplet has passed greylisting (its first message waits the delay). */
export async function warmUp(cluster: Cluster): Promise<void> {
  const until = Date.now() + 30_000;
  const result = await deliver(cluster.haproxy.ports.mx, `warm-up-${randomUUID()}`, until, () => undefined);
  if (result !== 'accepted') throw new Error(`warm-up message not accepted (${result})`);
}

export async function runScenario(
  cluster: Cluster,
  fault: Fault | undefined,
  opts: ScenarioOptions,
): Promise<ScenarioResult> {
  const started = Date.now();
  const until = started + (opts.deadlineMs ?? 120_000);
  const port = cluster.haproxy.ports.mx;
  const logStart = cluster.logs.length;
  const run = randomUUID().slice(0, 8);
  const notes: string[] = [];
  const note = (s: string) => {
    if (notes.length < 5 && !notes.includes(s)) notes.push(s);
  };
  let accepted = 0;
  let refused = 0;
  let failedAttempts = 0;
  let faultAt = 0;
  let lastFailure = 0;
  let slowestMs = 0;
  const acceptedTokens: string[] = [];
  const third = Math.max(1, Math.floor(opts.messages / 3));

  let injected: Promise<void> | undefined;
  let healed: Promise<void> | undefined;
  let healTimer: NodeJS.Timeout | undefined;
  const heal = () => {
    if (!fault || healed || !injected) return;
    clearTimeout(healTimer);
    healed = injected.then(() => fault.heal(cluster));
  };
  const maybeInject = () => {
    if (!fault || injected || accepted < third) return;
    faultAt = Date.now();
    injected = fault.inject(cluster);
    healTimer = setTimeout(heal, 3000);
  };

  let probing = true;
  let probes = 0;
  let ungreylisted = 0;
  const prober = (async () => {
    while (probing && Date.now() < until) {
      const greylistUp = cluster.processes.some((p) => p.service === 'greylist' && p.running);
      const code = await probe(port);
      if (code && greylistUp) {
        probes += 1;
        if (code === 250) {
          ungreylisted += 1;
          note(`probe answered 250 at ${Date.now() - started} ms`);
        }
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  })();

  let next = 0;
  const worker = async () => {
    while (next < opts.messages) {
      const token = `${run}-${next++}`;
      const t0 = Date.now();
      const r = await deliver(port, token, until, (at, why) => {
        failedAttempts += 1;
        if (faultAt) lastFailure = at;
        note(why.slice(0, 160));
      });
      if (r === 'accepted') {
        slowestMs = Math.max(slowestMs, Date.now() - t0);
        accepted += 1;
        acceptedTokens.push(token);
        maybeInject();
      } else if (r === 'refused') refused += 1;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const loadSeconds = (Date.now() - started) / 1000;
  probing = false;
  await prober;
  heal();
  await healed;

  // What reached the next hop (a message is complete there once the edge answered 250).
  const seen = new Map<string, number>();
  for (const m of cluster.delivered()) {
    const t = /^X-Scale-Token: (\S+)/m.exec(m.raw.toString('latin1'))?.[1];
    if (t?.startsWith(`${run}-`)) seen.set(t, (seen.get(t) ?? 0) + 1);
  }
  const lost = acceptedTokens.filter((t) => !seen.has(t)).length;
  const doubled = [...seen.values()].filter((n) => n > 1).length;

  const lines = cluster.logs.slice(logStart);
  const logged = decisionIds(lines);
  const decisionsByService: Record<string, number> = {};
  for (const l of lines) {
    if (typeof l.decision === 'string' && l.service)
      decisionsByService[l.service] = (decisionsByService[l.service] ?? 0) + 1;
  }
  const stream = await streamIds(cluster.nats.url, logged, 30_000);
  const missing = [...logged].filter((id) => !stream.ids.has(id)).length;

  return {
    scenario: fault?.name ?? 'baseline (no fault)',
    messages: opts.messages,
    accepted,
    lost,
    doubled,
    refused,
    failedAttempts,
    disturbanceMs: lastFailure ? lastFailure - faultAt : 0,
    slowestMs,
    perSecond: accepted / loadSeconds,
    probes,
    ungreylisted,
    decisionsLogged: logged.size,
    decisionsMissing: missing,
    decisionsDoubled: stream.doubled,
    decisionsByService,
    seconds: (Date.now() - started) / 1000,
    notes,
  };
}

function decisionIds(lines: LogLine[]): Set<string> {
  const ids = new Set<string>();
  for (const l of lines) if (typeof l.decision === 'string') ids.add(l.decision);
  return ids;
}

/**
 * The Nats-Msg-Id of every decision in the stream, read again until each wanted id is there or timeoutMs has
 * passed (a restarted process sends its journal a moment after it started). doubled: ids stored twice.
 */
async function streamIds(
  url: string,
  wanted: Set<string>,
  timeoutMs: number,
): Promise<{ ids: Set<string>; doubled: number }> {
  const nc = await connect({ servers: url.split(',') });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const until = Date.now() + timeoutMs;
    for (;;) {
      const ids = new Set<string>();
      let doubled = 0;
      const last = (await jsm.streams.info('SMTPGUARD_DECISIONS')).state.last_seq;
      const consumer = await js.consumers.get('SMTPGUARD_DECISIONS');
      const messages = await consumer.consume();
      if (last > 0) {
        for await (const m of messages) {
          const id = m.headers?.get('Nats-Msg-Id') ?? '';
          if (ids.has(id)) doubled += 1;
          ids.add(id);
          if (m.seq >= last) break;
        }
      }
      await messages.close();
      const complete = [...wanted].every((id) => ids.has(id));
      if (complete || Date.now() > until) return { ids, doubled };
      await new Promise((res) => setTimeout(res, 1000));
    }
  } finally {
    await nc.close();
  }
}

/** kill -9 of one process of the cluster, started again (same config and state directory) to heal. */
export function killProcess(name: string): Fault {
  return {
    name: `kill -9 ${name}`,
    inject: (c) => c.process(name).kill(),
    heal: (c) => c.process(name).start(),
  };
}

/** kill -9 of the NATS node leading the greylist triplets' KV stream (the worst node to lose), then restarted. */
export function killNatsLeader(): Fault {
  let killed = -1;
  return {
    name: 'kill -9 NATS node (KV leader)',
    async inject(c) {
      const nc = await connect({ servers: c.nats.url.split(',') });
      try {
        const jsm = await jetstreamManager(nc);
        const info = await jsm.streams.info('KV_cluster_greylist_triplets');
        const leader = info.cluster?.leader ?? 'node-0';
        killed = Number(leader.replace('node-', ''));
      } finally {
        await nc.close();
      }
      await c.nats.nodes[killed]?.kill();
    },
    async heal(c) {
      await c.nats.nodes[killed]?.restart();
    },
  };
}

/** The next hop goes away (its connections dropped) and comes back 3 s later. */
export function nextHopDown(): Fault {
  return {
    name: 'next hop down 3 s',
    inject: (c) => c.stopNextHop(),
    heal: (c) => c.startNextHop(),
  };
}

/**
 * Every scenario, in the order the report lists them; SCALE_SCENARIOS (comma-separated parts of names, e.g.
 * "baseline,NATS") picks some of them.
 */
export function allFaults(filter = process.env.SCALE_SCENARIOS): Array<Fault | undefined> {
  const all = [
    undefined,
    killProcess('smtp-edge-1'),
    killProcess('auth-1'),
    killProcess('reputation-1'),
    killProcess('greylist-1'),
    killNatsLeader(),
    nextHopDown(),
  ];
  const wanted = filter?.split(',').filter(Boolean);
  if (!wanted?.length) return all;
  return all.filter((f) => wanted.some((w) => (f?.name ?? 'baseline').includes(w)));
}

export function formatTable(results: ScenarioResult[]): string {
  const head = [
    'scenario',
    'accepted',
    'lost',
    'doubled',
    'refused 5xx',
    'failed attempts',
    'disturbance s',
    'slowest s',
    'msg/s',
    'probes',
    'ungreylisted',
    'decisions',
    'missing',
    'dup in stream',
    'run s',
  ];
  const rows = results.map((r) => [
    r.scenario,
    `${r.accepted}/${r.messages}`,
    String(r.lost),
    String(r.doubled),
    String(r.refused),
    String(r.failedAttempts),
    (r.disturbanceMs / 1000).toFixed(1),
    (r.slowestMs / 1000).toFixed(1),
    r.perSecond.toFixed(0),
    String(r.probes),
    String(r.ungreylisted),
    String(r.decisionsLogged),
    String(r.decisionsMissing),
    String(r.decisionsDoubled),
    r.seconds.toFixed(1),
  ]);
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}
