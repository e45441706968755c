// pnpm test:scale: the resilience scenarios of test/src/e2e/cluster.test.ts at full size, with the figures.
//
// One cluster on this machine (test/src/harness/cluster.ts): 3 NATS nodes, 2 replicas each of auth, reputation
// and greylist, 2 smtp-edge behind HAProxy (PROXY v2). Then, in order:
//
// 1. Baseline: SCALE_MESSAGES (2,000) messages, SCALE_CONCURRENCY (16) clients at a time, no fault. Its
//    per-message costs: decisions (= checks answered) per service, and NATS messages handled by the cluster
//    (sum of in_msgs over the nodes' /varz: client publishes, KV requests, replication between nodes).
// 2. The same load through one edge (smtp-edge-2 stopped, HAProxy's health check takes it out), then both again:
//    the throughput of 2 edges as a ratio of 1, measured in the same invocation.
// 3. Every fault scenario (kill -9 of an edge, of one replica of each service, of the NATS node leading the
//    greylist KV; the next hop down 3 s), each under the same load; see test/src/scale/scenarios.ts.
//
// Output: tables on stdout and .var/scale/resilience.json. The exit code is 1 when any scenario lost, doubled or
// wrongly refused a message, let a new triplet through greylisting, or left a logged decision out of the stream.
// SCALE_SCENARIOS picks scenarios by name (e.g. "greylist,NATS").
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Cluster, startCluster } from '../harness/cluster.js';
import { allFaults, formatTable, runScenario, type ScenarioResult, warmUp } from './scenarios.js';

const MESSAGES = Number(process.env.SCALE_MESSAGES ?? 2000);
const CONCURRENCY = Number(process.env.SCALE_CONCURRENCY ?? 16);
const DEADLINE_MS = 10 * 60_000;
const root = fileURLToPath(new URL('../../../', import.meta.url));

async function natsInMsgs(cluster: Cluster): Promise<number> {
  let total = 0;
  for (const n of cluster.nats.nodes) {
    const varz = (await (await fetch(`${n.monitorUrl}/varz`)).json()) as { in_msgs: number };
    total += varz.in_msgs;
  }
  return total;
}

const broken = (r: ScenarioResult) =>
  r.accepted !== r.messages ||
  r.lost > 0 ||
  r.doubled > 0 ||
  r.refused > 0 ||
  r.ungreylisted > 0 ||
  r.decisionsMissing > 0;

async function main(): Promise<void> {
  const opts = { messages: MESSAGES, concurrency: CONCURRENCY, deadlineMs: DEADLINE_MS };
  const cluster = await startCluster();
  const out: Record<string, unknown> = { messages: MESSAGES, concurrency: CONCURRENCY, cpus: cpus().length };
  let failed = false;
  try {
    await warmUp(cluster);

    const before = await natsInMsgs(cluster);
    const base = await runScenario(cluster, undefined, opts);
    const natsPerMessage = ((await natsInMsgs(cluster)) - before) / base.accepted;
    const costs = {
      natsMessagesPerMessage: natsPerMessage,
      decisionsPerMessage: Object.fromEntries(
        Object.entries(base.decisionsByService).map(([s, n]) => [s, n / base.accepted]),
      ),
    };
    out.costs = costs;
    process.stdout.write(
      `\nPer accepted message (baseline, ${base.accepted} messages):\n` +
        `| what | per message |\n|---|---|\n` +
        `| NATS messages handled (sum over 3 nodes) | ${natsPerMessage.toFixed(1)} |\n` +
        Object.entries(costs.decisionsPerMessage)
          .map(([s, n]) => `| decisions logged by ${s} | ${n.toFixed(2)} |`)
          .join('\n') +
        '\n',
    );

    const edge2 = cluster.process('smtp-edge-2');
    await edge2.stop();
    await new Promise((r) => setTimeout(r, 1500)); // HAProxy's check (500 ms, fall 1) takes it out
    const one = await runScenario(cluster, undefined, opts);
    await edge2.start();
    await new Promise((r) => setTimeout(r, 1500)); // and back in (rise 2)
    const two = await runScenario(cluster, undefined, opts);
    out.edges = { one, two, ratio: two.perSecond / one.perSecond };
    process.stdout.write(
      `\nThroughput through HAProxy (${CONCURRENCY} clients, ${MESSAGES} messages):\n` +
        `| edges | msg/s | ratio |\n|---|---|---|\n` +
        `| 1 | ${one.perSecond.toFixed(1)} | 1.00 |\n` +
        `| 2 | ${two.perSecond.toFixed(1)} | ${(two.perSecond / one.perSecond).toFixed(2)} |\n`,
    );

    const results: ScenarioResult[] = [base];
    for (const fault of allFaults()) {
      if (!fault) continue;
      const r = await runScenario(cluster, fault, opts);
      results.push(r);
      process.stdout.write(`${r.scenario}: ${broken(r) ? 'BROKEN' : 'ok'} (${r.seconds.toFixed(1)} s)\n`);
    }
    out.scenarios = results;
    process.stdout.write(`\nResilience (${MESSAGES} messages per scenario):\n${formatTable(results)}\n`);
    for (const r of results)
      if (r.notes.length) process.stdout.write(`${r.scenario}: ${r.notes.join(' | ')}\n`);
    failed = [...results, one, two].some(broken);
  } finally {
    await cluster.stop();
  }
  const dir = join(root, '.var', 'scale');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'resilience.json'), `${JSON.stringify(out, null, 2)}\n`);
  if (failed) {
    process.stdout.write(
      '\nA scenario lost, doubled or refused mail, let a triplet through, or lost a decision.\n',
    );
    process.exitCode = 1;
  }
}

await main();
