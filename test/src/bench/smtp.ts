// Benchmark of the whole system on the SMTP path, against a bare smtp-server sink measured in the same run.
//
// Run:  pnpm bench:smtp   (= tsc -b, unpack Postfix's smtp-source if missing, node test/dist/bench/smtp.js)
//
// Targets, each started as a user starts it (a child process, so every figure is of that process tree):
//   reference   a bare smtp-server that accepts and discards (test/src/bench/smtp-sink.ts), no greeting pause
//   checks-on   `node packages/launcher/dist/main.js --config <file>`: the 4 services in the launcher's one
//               process as `pnpm start` runs them (BENCH_PROCESSES=per-service: a process each), with the
//               config of deploy/local/smtpguard.yaml (spool next hop, decisions in a JSON-lines file, logLevel
//               info) plus checks: two DNSBL zones, FCrDNS, SPF (pass), HELO host and sender domain (MX) checks,
//               directory lookups of sender and recipient, greylist on the known-triplet path (delaySeconds 0,
//               auto-whitelisting off, the triplet seen before the run), URI lists, every decision recorded.
//               The MX listener's greeting delay (pregreet test, 1 s by default) is 0, as the reference has none,
//               and its per-client connection limits are off (all the load comes from 127.0.0.1).
//   checks-off  the same system with every optional check off (no DNS lists, no FCrDNS, no SPF, no greylist,
//               no URI lists, no HELO/sender checks); the recipient lookup and the relay decision remain.
// A DNS server on 127.0.0.1 (test harness) answers the zones; it runs in this process (not counted).
//
// Loads, by Postfix's smtp-source (4 KiB messages, one recipient, HELO client.bench.test, sender
// bench@spf-pass.test, recipient alice@example.test); every message must get 250 (smtp-source aborts otherwise
// and the run fails):
//   20x10       20 parallel sessions, about 10 messages per connection (smtp-source -s 20 -m 200 -d, repeated)
//   new-conn    20 parallel sessions, a new connection per message (smtp-source -s 20 -m 400, repeated)
//   single      1 session, connection reused (smtp-source -s 1 -m 50 -d, repeated)
// Each load runs for BENCH_SECONDS (default 3) or BENCH_MAX_MSGS messages (default 30,000), whichever comes
// first; BENCH_REPS repetitions (default 3) interleave the targets so that a busy neighbour hurts all of them
// alike. Reported: median and min..max of msgs/s, ms per message (per session), CPU µs per message summed over
// every process of the target (/proc/<pid>/stat, utime + stime, launcher and services included), ratio to the
// reference of the same repetition; added latency of one RCPT (checks-on minus checks-off, one session, MAIL,
// RCPT timed, RSET, BENCH_RCPTS times, medians); RSS of every process after checks-on accepted
// BENCH_SOAK_MSGS messages in total (default 50,000; the 20x10 load tops up to it, at most BENCH_SOAK_SECONDS,
// default 120), with the whole checks-on system's RSS each time another 25,000 messages were accepted (flat or
// growing).
// Output: a markdown table on stdout and .var/bench/smtp.json. BENCH_NODE=<node binary> runs the targets on
// another Node (the Node 20 / 24 comparison); BENCH_CPU_PROF=1 writes --cpu-prof profiles of the smtpguard
// services to .var/bench/profiles.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '@smtpguard/testing';
import { stringify } from 'yaml';
import { startDnsServer } from '../harness/dns-server.js';
import { RawSmtp } from '../harness/raw-smtp.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const outDir = join(root, '.var/bench');
const env = process.env;
const num = (v: string | undefined, d: number) => (v ? Number(v) : d);
const settings = {
  seconds: num(env.BENCH_SECONDS, 3),
  maxMsgs: num(env.BENCH_MAX_MSGS, 30_000),
  reps: num(env.BENCH_REPS, 3),
  rcpts: num(env.BENCH_RCPTS, 300),
  soakMsgs: num(env.BENCH_SOAK_MSGS, 50_000),
  soakSeconds: num(env.BENCH_SOAK_SECONDS, 120),
  /** How the launcher runs the services of the checks-on and checks-off targets (`--processes`). */
  processes: env.BENCH_PROCESSES ?? 'one',
  messageBytes: 4096,
  node: env.BENCH_NODE ?? process.execPath,
  loads: env.BENCH_LOADS?.split(',') ?? ['20x10', 'new-conn', 'single'],
  targets: env.BENCH_TARGETS?.split(',') ?? ['reference', 'checks-on', 'checks-off'],
};
const TARGETS = {
  /** Percent of the reference's msgs/s for checks-on, per load. */
  throughput: { '20x10': 0.45, 'new-conn': 0.35 } as Record<string, number>,
  cpuRatio: 3,
  rcptAddedMs: 0.3,
  rssMb: 500,
};

interface Load {
  name: string;
  sessions: number;
  args: string[];
  perRun: number;
}
const LOADS: Record<string, Load> = {
  '20x10': { name: '20x10', sessions: 20, args: ['-s', '20', '-m', '200', '-d'], perRun: 200 },
  'new-conn': { name: 'new-conn', sessions: 20, args: ['-s', '20', '-m', '400'], perRun: 400 },
  single: { name: 'single', sessions: 1, args: ['-s', '1', '-m', '50', '-d'], perRun: 50 },
};

// ---------- processes ----------

const HZ = 100; // USER_HZ, fixed at 100 for user space on Linux

function procStat(pid: number): { ppid: number; cpuTicks: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

/** The process and all its descendants. */
function tree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSyncSafe('/proc')) {
    const p = Number(e);
    if (!Number.isInteger(p)) continue;
    const st = procStat(p);
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(p);
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

function readdirSyncSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function cpuSeconds(pids: number[]): number {
  return pids.reduce((sum, p) => sum + (procStat(p)?.cpuTicks ?? 0), 0) / HZ;
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

function cmdName(pid: number): string {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const main = args.find((a) => /\/(services|packages)\/[^/]+\/dist\/main\.js$|smtp-sink\.js$/.test(a));
    if (!main) return args[0] ?? String(pid);
    const m = /\/(services|packages)\/([^/]+)\/dist|(smtp-sink)/.exec(main);
    return m?.[2] ?? m?.[3] ?? main;
  } catch {
    return String(pid);
  }
}

interface Target {
  name: string;
  port: number;
  child: ChildProcess;
  pids(): number[];
  stop(): Promise<void>;
  /** The last lines the target wrote (written to .var/bench/<target>.log when a run fails). */
  logTail?: () => string[];
}

async function spawnReady(name: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(settings.node, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  await untilReady(child, name, (line) => ready.test(line), 20);
  return child;
}

/**
 * Waits until the child writes a line `ready` accepts (stdout or stderr); rejects when it exits first or after
 * 60 s, with its last lines. Returns those lines, kept (at most `keep`) as the child goes on writing.
 */
async function untilReady(
  child: ChildProcess,
  name: string,
  ready: (line: string) => boolean,
  keep: number,
): Promise<string[]> {
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${tail.join('\n')}`)), 60_000);
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > keep) tail.shift();
      if (ready(line)) {
        clearTimeout(timer);
        resolve();
      }
    };
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', onLine);
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', onLine);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}): ${tail.join('\n')}`));
    });
  });
  return tail;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function startReference(): Promise<Target> {
  const port = await freePort();
  const child = await spawnReady('sink', [join(root, 'test/dist/bench/smtp-sink.js'), String(port)], /ready/);
  const pid = child.pid as number;
  return { name: 'reference', port, child, pids: () => [pid], stop: () => stopChild(child) };
}

async function startSmtpguard(name: string, dns: string, checksOn: boolean, dir: string): Promise<Target> {
  const [mx, sub, a, r, g] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const zone = (z: string) => ({ zone: z });
  const config = {
    instance: name,
    logLevel: 'info',
    stateDir: 'state',
    edge: {
      hostname: 'mx.example.test',
      listeners: {
        // One client address makes all the load: no per-client limits (the global ones stay).
        mx: {
          host: '127.0.0.1',
          port: mx,
          greetingDelayMs: 0,
          maxConnectionsPerClient: 0,
          connectionsPerClientPerMinute: 0,
        },
        submission: { host: '127.0.0.1', port: sub, requireAuth: true },
      },
      trustedNetworks: [],
      nextHop: { type: 'spool', dir: 'spool' },
      backends: {
        auth: { address: `127.0.0.1:${a}` },
        reputation: { address: `127.0.0.1:${r}` },
        greylist: { address: `127.0.0.1:${g}` },
      },
      checks: checksOn
        ? { heloHost: { enabled: true }, senderDomain: { enabled: true } }
        : {
            accountRecheck: { enabled: false },
            dnsbl: { enabled: false },
            greylist: { enabled: false },
            sender: { enabled: false },
            sendingLimits: { enabled: false },
            spf: { enabled: false },
            heloHost: { enabled: false },
            senderDomain: { enabled: false },
            uribl: { enabled: false },
            messageAuth: { enabled: false },
          },
    },
    auth: {
      listen: `127.0.0.1:${a}`,
      domains: [
        {
          name: 'example.test',
          mailboxes: [
            {
              address: 'alice@example.test',
              passwordHash:
                'scrypt$N=16384,r=8,p=1$nCrC3vWrvv2t4TBNbrOINQ==$CEEexL7zs8PFg1GLgxdiy+7MKjexuQhm7F/d9lcjnQg=',
            },
          ],
          aliases: { postmaster: ['alice@example.test'], abuse: ['alice@example.test'] },
        },
      ],
    },
    reputation: {
      listen: `127.0.0.1:${r}`,
      dns: { servers: [dns] },
      dnsbl: { zones: checksOn ? [zone('bl.test'), zone('bl2.test')] : [] },
      fcrdns: { enabled: checksOn },
      uribl: { zones: checksOn ? [zone('uri.test')] : [] },
    },
    greylist: {
      listen: `127.0.0.1:${g}`,
      delaySeconds: 0,
      autoWhitelist: { deliveries: 0 },
    },
  };
  const configPath = join(dir, 'smtpguard.yaml');
  await writeFile(configPath, stringify(config));
  const cpuProf = env.BENCH_CPU_PROF ? join(outDir, 'profiles', name) : undefined;
  if (cpuProf) await mkdir(cpuProf, { recursive: true });
  const args = [join(root, 'packages/launcher/dist/main.js'), '--config', configPath];
  const child = spawn(settings.node, [...args, '--processes', settings.processes], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cpuProf ? { ...process.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${cpuProf}` } : process.env,
  });
  const tail = await untilReady(child, name, (line) => line.includes('smtpguard is running'), 200);
  const pid = child.pid as number;
  return { name, port: mx, child, pids: () => tree(pid), stop: () => stopChild(child), logTail: () => tail };
}

// ---------- loads ----------

/** smtp-source of the system, or the one test/setup/ensure-smtp-source.mjs unpacked (with its libraries). */
function findSmtpSource(): { path: string; libs: string } {
  for (const p of ['/usr/sbin/smtp-source', '/usr/bin/smtp-source'])
    if (existsSync(p)) return { path: p, libs: '' };
  const unpacked = join(root, '.var/tools/postfix');
  if (existsSync(join(unpacked, 'usr/sbin/smtp-source')))
    return { path: join(unpacked, 'usr/sbin/smtp-source'), libs: join(unpacked, 'usr/lib/postfix') };
  throw new Error(
    'smtp-source is missing: run node test/setup/ensure-smtp-source.mjs (pnpm bench:smtp does)',
  );
}
const smtpSource = findSmtpSource();
const SOURCE_ARGS = [
  '-l',
  '4096',
  '-M',
  'client.bench.test',
  '-f',
  'bench@spf-pass.test',
  '-t',
  'alice@example.test',
];

function smtpSourceOnce(port: number, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(smtpSource.path, [...args, ...SOURCE_ARGS, `127.0.0.1:${port}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: smtpSource.libs ? { ...process.env, LD_LIBRARY_PATH: smtpSource.libs } : process.env,
    });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`smtp-source exited ${code}: ${err.trim().slice(0, 400)}`)),
    );
  });
}

interface LoadResult {
  target: string;
  load: string;
  rep: number;
  msgs: number;
  seconds: number;
  msgsPerSecond: number;
  msPerMessage: number;
  cpuUsPerMessage: number;
  /** The same, per process of the target (launcher, services). */
  cpuUsPerMessageByProcess: Record<string, number>;
}

async function runLoad(t: Target, load: Load, rep: number, seconds = settings.seconds): Promise<LoadResult> {
  const pids = t.pids();
  const cpu0 = cpuSeconds(pids);
  const each0 = pids.map((p) => cpuSeconds([p]));
  const t0 = process.hrtime.bigint();
  const stopAt = t0 + BigInt(Math.round(seconds * 1e9));
  let msgs = 0;
  do {
    await smtpSourceOnce(t.port, load.args);
    msgs += load.perRun;
  } while (process.hrtime.bigint() < stopAt && msgs < settings.maxMsgs);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(pids) - cpu0;
  const rate = msgs / secs;
  const cpuUsPerMessageByProcess: Record<string, number> = {};
  pids.forEach((p, i) => {
    cpuUsPerMessageByProcess[cmdName(p)] = Math.round(((cpuSeconds([p]) - (each0[i] ?? 0)) * 1e6) / msgs);
  });
  return {
    target: t.name,
    load: load.name,
    rep,
    msgs,
    seconds: round(secs, 3),
    msgsPerSecond: Math.round(rate),
    msPerMessage: round((1000 * load.sessions) / rate, 3),
    cpuUsPerMessage: Math.round((cpu * 1e6) / msgs),
    cpuUsPerMessageByProcess,
  };
}

/** Median ms of one RCPT round trip (MAIL, timed RCPT, RSET), one session. */
async function rcptLatency(t: Target, count: number): Promise<{ p50: number; p90: number }> {
  const { c } = await RawSmtp.open(t.port);
  await c.cmd('EHLO client.bench.test');
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const mail = await c.cmd('MAIL FROM:<bench@spf-pass.test>');
    if (!mail.startsWith('250')) throw new Error(`${t.name}: MAIL answered ${mail}`);
    const t0 = process.hrtime.bigint();
    const rcpt = await c.cmd('RCPT TO:<alice@example.test>');
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (!rcpt.startsWith('250')) throw new Error(`${t.name}: RCPT answered ${rcpt}`);
    await c.cmd('RSET');
  }
  await c.cmd('QUIT').catch(() => '');
  ms.sort((a, b) => a - b);
  return { p50: round(pct(ms, 50), 3), p90: round(pct(ms, 90), 3) };
}

/** The greylist's first sight of the bench triplet (deferred), then its pass: the known-triplet path. */
async function seedTriplet(t: Target): Promise<void> {
  const { c } = await RawSmtp.open(t.port);
  await c.cmd('EHLO client.bench.test');
  for (let i = 0; i < 3; i++) {
    await c.cmd('MAIL FROM:<bench@spf-pass.test>');
    const r = await c.cmd('RCPT TO:<alice@example.test>');
    await c.cmd('RSET');
    if (r.startsWith('250')) break;
    await new Promise((res) => setTimeout(res, 1100));
  }
  await c.cmd('QUIT').catch(() => '');
}

// ---------- figures ----------

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;
function pct(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (!n) return Number.NaN;
  return n % 2 ? (s[(n - 1) / 2] as number) : ((s[n / 2 - 1] as number) + (s[n / 2] as number)) / 2;
}
function spread(xs: number[], d = 0): string {
  if (!xs.length) return '-';
  return `${round(median(xs), d)} (${round(Math.min(...xs), d)}..${round(Math.max(...xs), d)})`;
}

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', cwd: root }).trim();
  } catch {
    return undefined;
  }
}

/** Started targets; stopped on the way out, also when the bench itself is interrupted. */
const targets: Target[] = [];
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    void Promise.all(targets.map((t) => t.stop())).then(() => process.exit(130));
  });

async function main(): Promise<number> {
  await mkdir(outDir, { recursive: true });
  const dns = await startDnsServer({
    '1.0.0.127.in-addr.arpa': { PTR: ['client.bench.test'] },
    'client.bench.test': { A: ['127.0.0.1'] },
    'spf-pass.test': { MX: ['10 mx.spf-pass.test'], TXT: ['v=spf1 ip4:127.0.0.0/8 -all'] },
    'mx.spf-pass.test': { A: ['192.0.2.25'] },
    // RFC 5782 test points, so that the lists' health checks keep them on.
    '2.0.0.127.bl.test': { A: ['127.0.0.2'] },
    '2.0.0.127.bl2.test': { A: ['127.0.0.2'] },
    'test.uri.test': { A: ['127.0.0.2'] },
  });
  const work = await mkdtemp(join(tmpdir(), 'sg-bench-'));
  const results: LoadResult[] = [];
  const rcpt: Record<string, { p50: number; p90: number }[]> = {};
  let accepted = 0;
  let failure: string | undefined;
  const rss: { process: string; pid: number; rssMb: number }[] = [];
  /** The checks-on system's RSS (all its processes) after so many accepted messages. */
  const rssAlong: { messages: number; rssMb: number }[] = [];
  try {
    for (const name of settings.targets) {
      process.stdout.write(`starting ${name} ... `);
      const dir = join(work, name);
      await mkdir(dir, { recursive: true });
      const t =
        name === 'reference'
          ? await startReference()
          : await startSmtpguard(name, dns.address, name === 'checks-on', dir);
      targets.push(t);
      if (name === 'checks-on') await seedTriplet(t);
      // Warm-up (JIT, caches, connections to the backends): one run of each load, not measured.
      for (const l of settings.loads) await smtpSourceOnce(t.port, (LOADS[l] as Load).args);
      process.stdout.write('ready\n');
    }
    for (let rep = 1; rep <= settings.reps; rep++) {
      for (const l of settings.loads) {
        for (const t of targets) {
          const r = await runLoad(t, LOADS[l] as Load, rep);
          if (t.name === 'checks-on') accepted += r.msgs;
          results.push(r);
          process.stdout.write(
            `rep ${rep} ${l} ${t.name}: ${r.msgsPerSecond} msgs/s, ${r.msPerMessage} ms/msg, ${r.cpuUsPerMessage} µs CPU/msg (${Object.entries(
              r.cpuUsPerMessageByProcess,
            )
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')})\n`,
          );
        }
      }
      for (const t of targets) {
        const lat = await rcptLatency(t, settings.rcpts);
        const list = rcpt[t.name] ?? [];
        list.push(lat);
        rcpt[t.name] = list;
        process.stdout.write(`rep ${rep} RCPT ${t.name}: p50 ${lat.p50} ms\n`);
      }
    }
    const on = targets.find((t) => t.name === 'checks-on');
    if (on) {
      const soakStop = Date.now() + settings.soakSeconds * 1000;
      const total = () => on.pids().reduce((sum, pid) => sum + rssMb(pid), 0);
      let next = Math.ceil((accepted + 1) / 25_000) * 25_000;
      while (accepted < settings.soakMsgs && Date.now() < soakStop) {
        await smtpSourceOnce(on.port, (LOADS['20x10'] as Load).args);
        accepted += 200;
        if (accepted >= next) {
          rssAlong.push({ messages: accepted, rssMb: total() });
          process.stdout.write(`checks-on RSS after ${accepted} messages: ${total()} MB\n`);
          next += 25_000;
        }
      }
    }
    for (const t of targets)
      for (const pid of t.pids()) rss.push({ process: `${t.name} ${cmdName(pid)}`, pid, rssMb: rssMb(pid) });
    if (on) {
      const spooled = (await readdir(join(work, 'checks-on', 'state', 'spool', 'new')).catch(() => []))
        .length;
      process.stdout.write(
        `checks-on: ${spooled} messages in the spool (${accepted} answered 250 in measured runs)\n`,
      );
    }
  } catch (err) {
    failure = (err as Error).message;
    process.stdout.write(`FAILED: ${failure}\n`);
    for (const t of targets)
      if (t.logTail) await writeFile(join(outDir, `${t.name}.log`), `${t.logTail().join('\n')}\n`);
  } finally {
    await Promise.all(targets.map((t) => t.stop()));
    await dns.close();
    if (!env.BENCH_KEEP) await rm(work, { recursive: true, force: true });
  }

  // Summary per target and load.
  const summary: Record<string, unknown>[] = [];
  const lines = [
    '| load | target | msgs/s | ms/msg | CPU µs/msg | ratio msgs/s | ratio CPU | target |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const l of settings.loads) {
    for (const t of settings.targets) {
      const rs = results.filter((r) => r.load === l && r.target === t);
      if (!rs.length) continue;
      const ref = (rep: number) =>
        results.find((r) => r.load === l && r.target === 'reference' && r.rep === rep);
      const ratios = rs.map((r) => r.msgsPerSecond / (ref(r.rep)?.msgsPerSecond ?? Number.NaN));
      const cpuRatios = rs.map((r) => r.cpuUsPerMessage / (ref(r.rep)?.cpuUsPerMessage ?? Number.NaN));
      let aim = '';
      if (t === 'checks-on') {
        const want = TARGETS.throughput[l];
        const parts: string[] = [];
        if (want) parts.push(`${median(ratios) >= want ? 'meets' : 'below'} ≥${want}×`);
        parts.push(`CPU ${median(cpuRatios) <= TARGETS.cpuRatio ? 'meets' : 'above'} ≤${TARGETS.cpuRatio}×`);
        aim = parts.join('; ');
      }
      summary.push({
        load: l,
        target: t,
        msgsPerSecond: rs.map((r) => r.msgsPerSecond),
        msPerMessage: rs.map((r) => r.msPerMessage),
        cpuUsPerMessage: rs.map((r) => r.cpuUsPerMessage),
        ratio: ratios.map((x) => round(x, 3)),
        cpuRatio: cpuRatios.map((x) => round(x, 2)),
      });
      lines.push(
        `| ${l} | ${t} | ${spread(rs.map((r) => r.msgsPerSecond))} | ${spread(
          rs.map((r) => r.msPerMessage),
          2,
        )} | ${spread(rs.map((r) => r.cpuUsPerMessage))} | ${t === 'reference' ? '1' : spread(ratios, 3)} | ${
          t === 'reference' ? '1' : spread(cpuRatios, 2)
        } | ${aim} |`,
      );
    }
  }
  const p50 = (n: string) => (rcpt[n] ?? []).map((x) => x.p50);
  const added = (rcpt['checks-on'] ?? []).map((x, i) =>
    round(x.p50 - (rcpt['checks-off']?.[i]?.p50 ?? Number.NaN), 3),
  );
  lines.push('', '| RCPT round trip, 1 session | p50 ms, median (min..max) of reps |', '|---|---:|');
  for (const t of settings.targets) lines.push(`| ${t} | ${spread(p50(t), 3)} |`);
  if (added.length)
    lines.push(
      `| added by checks (on − off) | ${spread(added, 3)} — target ≤ ${TARGETS.rcptAddedMs} ms: ${median(added) <= TARGETS.rcptAddedMs ? 'meets' : 'above'} |`,
    );
  const rssOn = rss.filter((x) => x.process.startsWith('checks-on')).reduce((s, x) => s + x.rssMb, 0);
  lines.push('', `| process (RSS after ${accepted} messages through checks-on) | MB |`, '|---|---:|');
  for (const x of rss) lines.push(`| ${x.process} | ${x.rssMb} |`);
  lines.push(
    `| **checks-on total** | **${rssOn}** (target ≤ ${TARGETS.rssMb}: ${rssOn <= TARGETS.rssMb ? 'meets' : 'above'}) |`,
  );
  if (rssAlong.length) {
    lines.push('', '| checks-on, messages accepted | RSS, all processes, MB |', '|---:|---:|');
    for (const x of rssAlong) lines.push(`| ${x.messages} | ${x.rssMb} |`);
  }
  const cpu = cpus();
  const report = {
    benchmark: 'SMTP path: smtpguard vs a bare smtp-server sink (smtp-source loads)',
    generatedAt: new Date().toISOString(),
    commit: gitCommit(),
    machine: {
      cpus: cpu.length,
      cpuModel: cpu[0]?.model,
      memoryGiB: round(totalmem() / 2 ** 30, 1),
      node: execFileSync(settings.node, ['--version'], { encoding: 'utf8' }).trim(),
      platform: `${process.platform}-${process.arch}`,
    },
    settings,
    targets: TARGETS,
    summary,
    rcptLatencyMs: rcpt,
    rcptAddedMs: added,
    rss,
    rssAlong,
    acceptedByChecksOn: accepted,
    runs: results,
    failure,
  };
  const file = join(outDir, env.BENCH_OUT ?? 'smtp.json');
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(
    `\nnode ${report.machine.node}, ${cpu.length} cores, commit ${report.commit}, smtpguard processes: ${settings.processes}; medians (min..max) of ${settings.reps} reps, ${settings.seconds} s each\n\n${lines.join('\n')}\n\nresults: ${file}\n`,
  );
  return failure ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bench:smtp: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
