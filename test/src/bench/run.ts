// Benchmark of the greylist service's Check RPC over gRPC.
//
// Run:  pnpm bench            (= tsc -b && node test/dist/bench/run.js; needs nats-server: pnpm test:setup)
//
// What is measured: a real greylist process, started by the launcher with a generated config (logLevel
// warn), answering Check over gRPC on 127.0.0.1 to the generated client in this process. Everything a
// check costs in production is included: gRPC (de)serialization and the OpenTelemetry gRPC
// instrumentation, the greylister, the store update (file: in-memory map plus one journal line a write,
// with its compactions; nats-kv: JetStream KV get and compare-and-set put on a real nats-server), and the
// decision event (file: a JSON line in the decisions file; NATS: a JetStream publish).
//
// Four runs, one after the other, each with a fresh service, a fresh store and (nats-kv) a fresh
// nats-server: store file / nats-kv x 1 / 50 concurrent callers, where C callers each await their own
// call in a loop over one gRPC channel (as the edge does). Workload: 80% checks of triplets that already
// passed (5,000 of them, seeded before the run: each checked twice with delaySeconds 0), 15% never-seen
// triplets (deferred), 5% whitelisted recipients (postmaster@, abuse@); client IPs across the /16
// 198.18.0.0, distinct senders. 2,000 checks of the same mix warm the process up before measuring.
// Each measured run stops by itself after 50,000 checks or 10 s, whichever comes first.
//
// Latency is per call, measured in this process with process.hrtime.bigint() from issuing the call to
// its answer (so it includes client-side gRPC work); throughput is answered checks / wall time. CPU is
// reported per process (% of one core) because the client, the service and nats-server share the
// machine's cores: on a 2-core machine the client's own cost limits what can be measured.
//
// Aim (issue): with the file store, 10,000 checks/s and p99 under 5 ms. Throughput is judged on the
// 50-caller run (one caller measures latency: it can only go as fast as one round trip); p99 on both.
// A missed aim is reported as "below aim" and does not fail the command; the exit code is non-zero only
// when a run failed (error, failed calls). The nats-kv runs have no aim; they are reported as
// "skipped: nats-kv store not available" while that store is not in the build.
//
// Output: a table on stdout and .var/bench/greylist.json (all figures, machine, commit).
// Knobs for quick or profiled runs (defaults are the benchmark): BENCH_MAX_CHECKS, BENCH_MAX_SECONDS,
// BENCH_STORES (e.g. "file"), BENCH_CONCURRENCY (e.g. "50"), BENCH_CPU_PROF=1 (writes a --cpu-prof
// profile of each greylist process to .var/bench/profiles/; it covers seeding and warm-up too).
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchResult, benchGreylist, MIX, type StoreType } from './greylist.bench.js';

const AIM = { store: 'file' as StoreType, checksPerSecond: 10_000, p99Ms: 5, throughputAtConcurrency: 50 };

const outDir = fileURLToPath(new URL('../../../.var/bench/', import.meta.url));
const env = process.env;
const num = (v: string | undefined, d: number) => (v ? Number(v) : d);
const settings = {
  maxChecks: num(env.BENCH_MAX_CHECKS, 50_000),
  maxSeconds: num(env.BENCH_MAX_SECONDS, 10),
  warmupChecks: 2_000,
  knownTriplets: 5_000,
  deadlineMs: 2_000,
  stores: (env.BENCH_STORES?.split(',') ?? ['file', 'nats-kv']) as StoreType[],
  concurrencies: env.BENCH_CONCURRENCY?.split(',').map(Number) ?? [1, 50],
  mix: MIX,
};

interface Row extends Omit<Partial<BenchResult>, 'status'> {
  store: StoreType;
  concurrency: number;
  status: 'ok' | 'skipped' | 'failed';
  verdict: string;
  error?: string;
}

function verdict(r: BenchResult): string {
  if (r.errors) return `FAILED: ${r.errors} calls failed (${r.firstError})`;
  if (r.store !== AIM.store) return 'no aim';
  const misses: string[] = [];
  if (r.concurrency === AIM.throughputAtConcurrency && r.checksPerSecond < AIM.checksPerSecond)
    misses.push(`${r.checksPerSecond} < ${AIM.checksPerSecond} checks/s`);
  if (!(r.latencyMs.p99 < AIM.p99Ms)) misses.push(`p99 ${r.latencyMs.p99} >= ${AIM.p99Ms} ms`);
  if (misses.length) return `below aim (${misses.join('; ')})`;
  return r.concurrency === AIM.throughputAtConcurrency
    ? 'meets aim'
    : `meets p99 aim (throughput judged at ${AIM.throughputAtConcurrency} callers)`;
}

function table(rows: Row[]): string {
  const head = [
    'store',
    'callers',
    'checks',
    'seconds',
    'checks/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'cpu %',
    'aim',
  ];
  const body = rows.map((r) => {
    if (r.status !== 'ok')
      return [r.store, String(r.concurrency), '-', '-', '-', '-', '-', '-', '-', r.verdict];
    const cpu = r.cpuPercent;
    const cpuText = cpu
      ? `gl ${cpu.greylist}${cpu.natsServer !== undefined ? ` nats ${cpu.natsServer}` : ''} client ${cpu.benchClient}`
      : '-';
    return [
      r.store,
      String(r.concurrency),
      String(r.checks),
      String(r.seconds),
      String(r.checksPerSecond),
      String(r.latencyMs?.p50),
      String(r.latencyMs?.p99),
      String(r.latencyMs?.max),
      cpuText,
      r.verdict,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i >= 2 && i <= 7 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  await mkdir(outDir, { recursive: true });
  const cpuProfDir = env.BENCH_CPU_PROF ? join(outDir, 'profiles') : undefined;
  if (cpuProfDir) await mkdir(cpuProfDir, { recursive: true });
  const rows: Row[] = [];
  for (const store of settings.stores) {
    for (const concurrency of settings.concurrencies) {
      process.stdout.write(`greylist Check, store ${store}, ${concurrency} caller(s) ... `);
      try {
        const r = await benchGreylist({ ...settings, store, concurrency, cpuProfDir });
        if (r.status === 'skipped') {
          rows.push({ ...r, verdict: `skipped: ${r.skipReason}` });
          process.stdout.write(`skipped: ${r.skipReason}\n`);
        } else {
          const v = verdict(r);
          rows.push({ ...r, status: r.errors ? 'failed' : 'ok', verdict: v });
          process.stdout.write(
            `${r.checksPerSecond} checks/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms\n`,
          );
        }
      } catch (err) {
        const message = (err as Error).message;
        rows.push({ store, concurrency, status: 'failed', verdict: `FAILED: ${message}`, error: message });
        process.stdout.write(`FAILED: ${message}\n`);
      }
    }
  }
  const cpu = cpus();
  const report = {
    benchmark: 'greylist Check over gRPC',
    generatedAt: new Date().toISOString(),
    commit: gitCommit(),
    machine: {
      cpus: cpu.length,
      cpuModel: cpu[0]?.model,
      memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
    },
    aim: AIM,
    settings: { ...settings, stores: undefined, concurrencies: undefined },
    runs: rows,
  };
  const file = join(outDir, 'greylist.json');
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(
    `\n${table(rows)}\n\ncpu %: of one core, during the measured part (${cpu.length} cores)\n`,
  );
  process.stdout.write(`results: ${file}\n`);
  return rows.some((r) => r.status === 'failed') ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
