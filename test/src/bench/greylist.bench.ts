// One benchmark run of the greylist service's Check RPC: a real greylist process (started by the
// launcher), a generated config, a real nats-server for the nats-kv store, and the generated gRPC client.
// See run.ts for what is measured and how to run it.
import { readFileSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { greylist } from '@smtpguard/contracts';
import { type LogLine, type RunningService, startService } from '@smtpguard/launcher';
import { type NatsServer, startNats } from '@smtpguard/testing';
import { stringify } from 'yaml';
import { buildConfig, writeConfig } from '../harness/system.js';

export type StoreType = 'file' | 'nats-kv';

export interface BenchOptions {
  store: StoreType;
  /** Callers, each awaiting its own call in a loop. */
  concurrency: number;
  /** The measured part stops after this many checks ... */
  maxChecks: number;
  /** ... or after this many seconds, whichever comes first. */
  maxSeconds: number;
  /** Checks of the same mix, at the same concurrency, run (and discarded) before measuring. */
  warmupChecks: number;
  /** Triplets that have already passed greylisting before the run (the "repeat" part of the mix). */
  knownTriplets: number;
  /** Per-call deadline; a call over it counts as an error. */
  deadlineMs: number;
  /** Directory below which --cpu-prof profiles of the greylist process go (seeding, warm-up and run). */
  cpuProfDir?: string;
}

export interface Mix {
  /** Share of checks on triplets that already passed (answer: pass, greylist.passed). */
  repeat: number;
  /** Share of checks on never-seen triplets (answer: defer, greylist.new). */
  fresh: number;
  /** Share of checks to whitelisted recipients (postmaster@, abuse@; answer: pass, greylist.whitelisted). */
  whitelisted: number;
}

export const MIX: Mix = { repeat: 0.8, fresh: 0.15, whitelisted: 0.05 };

export interface BenchResult {
  store: StoreType;
  concurrency: number;
  status: 'ok' | 'skipped';
  skipReason?: string;
  checks: number;
  errors: number;
  firstError?: string;
  seconds: number;
  checksPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Answers received during the measured part, by reason code. */
  reasons: Record<string, number>;
  /** CPU used during the measured part, in % of one core. */
  cpuPercent: { greylist: number; benchClient: number; natsServer?: number };
  /** Log lines the greylist process wrote during the measured part (0 expected at logLevel warn). */
  serviceLogLines: number;
  /** Lines in the decisions file after the service stopped (file mode; decisions go to NATS otherwise). */
  decisionLines?: number;
  /** Triplets known before the run and checks used for seeding + warm-up. */
  knownTriplets: number;
  warmupChecks: number;
  cpuProfile?: string;
}

// ---------- workload ----------

/** Deterministic PRNG (mulberry32), so every run sends the same workload. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n as lower-case letters (a, b, ..., z, ba, bb, ...): senders keep distinct after digit folding. */
function letters(n: number): string {
  let s = '';
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26);
  } while (n > 0);
  return s;
}

interface Triplet {
  ip: string;
  sender: string;
  recipient: string;
}

const RECIPIENTS = 2000;
const SENDER_DOMAINS = 400;

class Workload {
  private readonly rnd: () => number;
  private freshCount = 0;
  readonly known: Triplet[];

  constructor(
    seed: number,
    knownTriplets: number,
    private readonly prefix: string,
  ) {
    this.rnd = prng(seed);
    this.known = Array.from({ length: knownTriplets }, (_, i) => ({
      ip: this.ip(),
      // Distinct senders: a local part per triplet, spread over SENDER_DOMAINS domains.
      sender: `${letters(i)}.news@${letters(i % SENDER_DOMAINS)}-mail.example.net`,
      recipient: this.recipient(),
    }));
  }

  /** A client address across the /16 198.18.0.0 (the benchmarking range of RFC 2544). */
  private ip(): string {
    return `198.18.${Math.floor(this.rnd() * 256)}.${1 + Math.floor(this.rnd() * 254)}`;
  }

  private recipient(): string {
    return `${letters(Math.floor(this.rnd() * RECIPIENTS))}.box@example.test`;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rnd() * xs.length)] as T;
  }

  /** A triplet seen for the first time (unique sender: never repeats, even across runs of one store). */
  freshTriplet(): Triplet {
    const n = this.freshCount++;
    return {
      ip: this.ip(),
      sender: `${this.prefix}${letters(n)}@${letters(n % SENDER_DOMAINS)}-bulk.example.org`,
      recipient: this.recipient(),
    };
  }

  request(t: Triplet, sessionTag: string): greylist.CheckRequest {
    const domain = t.sender.slice(t.sender.indexOf('@') + 1);
    const r = this.rnd();
    return greylist.CheckRequest.fromPartial({
      session: {
        sessionId: `${sessionTag}${Math.floor(this.rnd() * 2 ** 48).toString(16)}`,
        transactionId: Math.floor(this.rnd() * 2 ** 32).toString(16),
        clientIp: t.ip,
        clientPort: 1024 + Math.floor(this.rnd() * 60000),
        clientHostname: r < 0.7 ? `mx${Math.floor(r * 10)}.${domain}` : '',
        helo: `mx.${domain}`,
        sender: t.sender,
        listener: 1, // LISTENER_MX
        tls: r < 0.6,
        edgeInstance: 'edge-bench-0',
      },
      recipient: t.recipient,
    });
  }

  /** n requests in the benchmark mix. */
  mix(n: number, mix: Mix = MIX): greylist.CheckRequest[] {
    const out: greylist.CheckRequest[] = [];
    for (let i = 0; i < n; i++) {
      const r = this.rnd();
      if (r < mix.repeat) out.push(this.request(this.pick(this.known), 'r'));
      else if (r < mix.repeat + mix.fresh) out.push(this.request(this.freshTriplet(), 'n'));
      else {
        const t = this.pick(this.known);
        const rcpt = `${this.rnd() < 0.5 ? 'postmaster' : 'abuse'}@example.test`;
        out.push(this.request({ ...t, recipient: rcpt }, 'w'));
      }
    }
    return out;
  }
}

// ---------- driving the RPC ----------

interface DriveResult {
  latenciesMs: Float64Array;
  completed: number;
  errors: number;
  firstError?: string;
  reasons: Record<string, number>;
  elapsedNs: bigint;
}

function checkOnce(
  client: greylist.GreylistServiceClient,
  req: greylist.CheckRequest,
  deadlineMs: number,
): Promise<greylist.CheckResponse> {
  return new Promise((resolve, reject) => {
    client.check(req, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

/** `concurrency` callers, each awaiting its own call in a loop, until the requests or the time run out. */
async function drive(
  client: greylist.GreylistServiceClient,
  requests: greylist.CheckRequest[],
  concurrency: number,
  maxSeconds: number,
  deadlineMs: number,
): Promise<DriveResult> {
  const latenciesMs = new Float64Array(requests.length);
  const reasons: Record<string, number> = {};
  let next = 0;
  let completed = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = process.hrtime.bigint();
  const stopAt = start + BigInt(Math.round(maxSeconds * 1e9));
  const caller = async () => {
    while (next < requests.length && process.hrtime.bigint() < stopAt) {
      const req = requests[next++] as greylist.CheckRequest;
      const t0 = process.hrtime.bigint();
      try {
        const res = await checkOnce(client, req, deadlineMs);
        latenciesMs[completed++] = Number(process.hrtime.bigint() - t0) / 1e6;
        reasons[res.reasonCode] = (reasons[res.reasonCode] ?? 0) + 1;
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  const elapsedNs = process.hrtime.bigint() - start;
  return {
    latenciesMs: latenciesMs.subarray(0, completed),
    completed,
    errors,
    firstError,
    reasons,
    elapsedNs,
  };
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number;
}

// ---------- processes ----------

// /proc/<pid>/stat counts in USER_HZ, which Linux fixes at 100 for user space.
const CLOCK_TICKS = 100;

/** CPU seconds (user + system) a process has used so far, from /proc; undefined when unreadable. */
function processCpuSeconds(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ", field 3 is state; utime and stime are fields 14 and 15 of the full line.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** Pid of the nats-server listening on port (startNats does not expose it), found through /proc. */
async function natsServerPid(port: number): Promise<number | undefined> {
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const cmd = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const args = cmd.split('\0');
    if (args[0]?.endsWith('nats-server') && args.includes(String(port))) return Number(entry);
  }
  return undefined;
}

async function stopProcess(s: RunningService, timeoutMs = 15_000): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), timeoutMs);
  await s.exited;
  clearTimeout(timer);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The store cannot be used in this build (nats-kv before its store exists): the run is skipped. */
const UNAVAILABLE = /nats-kv[^\n]*not available/i;

// ---------- one run ----------

export async function benchGreylist(opts: BenchOptions): Promise<BenchResult> {
  const base = {
    store: opts.store,
    concurrency: opts.concurrency,
    knownTriplets: opts.knownTriplets,
    warmupChecks: opts.warmupChecks,
  };
  let nats: NatsServer | undefined;
  let service: RunningService | undefined;
  let client: greylist.GreylistServiceClient | undefined;
  let dir: string | undefined;
  const logs: LogLine[] = [];
  try {
    if (opts.store === 'nats-kv') nats = await startNats();
    const { config } = await buildConfig({
      dnsServer: '127.0.0.1:53', // reputation is not started; the greylist does not resolve anything
      natsUrl: nats?.url,
      // 0 so that a triplet passes on its second sight: seeding makes the known triplets pass with two
      // checks each. Checks take the same code path as with the default delay (read, update, write).
      greylistDelaySeconds: 0,
      services: ['greylist'],
    });
    config.greylist.store = { type: opts.store };
    // "greylist started", which startService waits for, is an info line: start at info, then switch
    // the running service to warn (hot reload) and make sure it took before measuring.
    config.logLevel = 'info';
    const written = await writeConfig(config);
    dir = written.dir;
    const configPath = written.configPath;
    // One profile per thread (the loader-hooks worker has its own): a directory per run.
    const cpuProfile = opts.cpuProfDir
      ? join(opts.cpuProfDir, `greylist-${opts.store}-c${opts.concurrency}`)
      : undefined;
    try {
      service = await startService(
        'greylist',
        {
          configPath,
          services: ['greylist'],
          env: cpuProfile ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${cpuProfile}` } : {},
        },
        logs,
      );
    } catch (err) {
      const text = `${(err as Error).message}\n${logs.map((l) => l.msg ?? '').join('\n')}`;
      if (opts.store === 'nats-kv' && UNAVAILABLE.test(text)) {
        return {
          ...base,
          status: 'skipped',
          skipReason: 'nats-kv store not available',
          checks: 0,
          errors: 0,
          seconds: 0,
          checksPerSecond: 0,
          latencyMs: { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 },
          reasons: {},
          cpuPercent: { greylist: 0, benchClient: 0 },
          serviceLogLines: 0,
        };
      }
      throw err;
    }

    const address = config.greylist.listen as string;
    client = new greylist.GreylistServiceClient(address, credentials.createInsecure());
    const c = client;
    const work = new Workload(20260 + opts.concurrency, opts.knownTriplets, 'fresh.');

    // Seeding: each known triplet twice (defer, then pass), so they are "repeat triplets that pass".
    for (const round of ['first', 'second']) {
      const seed = await drive(
        c,
        work.known.map((t) => work.request(t, 's')),
        50,
        600,
        opts.deadlineMs,
      );
      if (seed.errors) throw new Error(`seeding (${round} sight) failed: ${seed.firstError}`);
    }

    config.logLevel = 'warn';
    await writeFile(configPath, stringify(config));
    await waitForQuietLogs(c, work, logs, opts.deadlineMs);

    const warm = await drive(c, work.mix(opts.warmupChecks), opts.concurrency, 600, opts.deadlineMs);
    if (warm.errors) throw new Error(`warm-up failed: ${warm.firstError}`);

    const requests = work.mix(opts.maxChecks);
    const natsPid = nats ? await natsServerPid(nats.port) : undefined;
    const logsBefore = logs.length;
    const cpu0 = {
      greylist: processCpuSeconds(service.child.pid),
      nats: processCpuSeconds(natsPid),
      client: process.cpuUsage(),
    };
    const run = await drive(c, requests, opts.concurrency, opts.maxSeconds, opts.deadlineMs);
    const seconds = Number(run.elapsedNs) / 1e9;
    const cpu1 = {
      greylist: processCpuSeconds(service.child.pid),
      nats: processCpuSeconds(natsPid),
      client: process.cpuUsage(cpu0.client),
    };
    const serviceLogLines = logs.length - logsBefore;

    const pct = (a?: number, b?: number) =>
      a === undefined || b === undefined ? Number.NaN : round(((b - a) / seconds) * 100, 1);
    const sorted = Float64Array.from(run.latenciesMs).sort();
    const sum = sorted.reduce((s, x) => s + x, 0);

    client.close();
    client = undefined;
    await stopProcess(service);
    service = undefined;
    let decisionLines: number | undefined;
    if (opts.store === 'file') {
      const text = await readFile(join(dir, 'state', 'decisions.jsonl'), 'utf8').catch(() => '');
      decisionLines = text.split('\n').length - 1;
    }

    return {
      ...base,
      status: 'ok',
      checks: run.completed,
      errors: run.errors,
      ...(run.firstError ? { firstError: run.firstError } : {}),
      seconds: round(seconds, 3),
      checksPerSecond: round(run.completed / seconds, 0),
      latencyMs: {
        p50: round(percentile(sorted, 0.5), 3),
        p90: round(percentile(sorted, 0.9), 3),
        p99: round(percentile(sorted, 0.99), 3),
        max: round(sorted[sorted.length - 1] ?? Number.NaN, 3),
        mean: round(sum / sorted.length, 3),
      },
      reasons: run.reasons,
      cpuPercent: {
        greylist: pct(cpu0.greylist, cpu1.greylist),
        benchClient: round(((cpu1.client.user + cpu1.client.system) / 1e6 / seconds) * 100, 1),
        ...(natsPid ? { natsServer: pct(cpu0.nats, cpu1.nats) } : {}),
      },
      serviceLogLines,
      ...(decisionLines !== undefined ? { decisionLines } : {}),
      ...(cpuProfile ? { cpuProfile } : {}),
    };
  } finally {
    client?.close();
    if (service) await stopProcess(service);
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Waits until the reload to logLevel warn took: a check of a new triplet (a defer, logged at info)
 * must no longer produce a log line.
 */
async function waitForQuietLogs(
  client: greylist.GreylistServiceClient,
  work: Workload,
  logs: LogLine[],
  deadlineMs: number,
): Promise<void> {
  for (let i = 0; i < 40; i++) {
    const req = work.request(work.freshTriplet(), `probe${i}-`);
    await checkOnce(client, req, deadlineMs);
    await sleep(250);
    const id = req.session?.sessionId;
    if (!logs.some((l) => l.session === id)) return;
  }
  throw new Error('the greylist service did not switch to logLevel warn after the config change');
}
