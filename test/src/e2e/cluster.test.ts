// The system as a cluster (3 NATS nodes, 2 replicas of each service, 2 edges behind HAProxy), each part killed
// with SIGKILL under a small load and started again: nothing lost or doubled, no valid message refused, no new
// triplet let through greylisting while a greylist replica is up, every logged decision in the stream.
// The same scenarios with 2,000 messages each: pnpm test:scale (test/src/scale/run.ts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Cluster, startCluster } from '../harness/cluster.js';
import { allFaults, formatTable, runScenario, type ScenarioResult, warmUp } from '../scale/scenarios.js';

const MESSAGES = 60;

let cluster: Cluster;
const results: ScenarioResult[] = [];

before(async () => {
  cluster = await startCluster();
  await warmUp(cluster);
});

after(async () => {
  if (results.length) process.stdout.write(`${formatTable(results)}\n`);
  await cluster?.stop();
});

describe('cluster under faults', () => {
  for (const fault of allFaults()) {
    it(`${fault?.name ?? 'baseline (no fault)'}: nothing lost, doubled or refused; greylisting holds; decisions complete`, async () => {
      const r = await runScenario(cluster, fault, { messages: MESSAGES, concurrency: 4, deadlineMs: 60_000 });
      results.push(r);
      const detail = JSON.stringify(r);
      assert.equal(r.accepted, MESSAGES, detail);
      assert.equal(r.lost, 0, detail);
      assert.equal(r.doubled, 0, detail);
      assert.equal(r.refused, 0, detail);
      assert.equal(r.ungreylisted, 0, detail);
      assert.ok(r.decisionsLogged > MESSAGES, detail);
      assert.equal(r.decisionsMissing, 0, detail);
    });
  }
});
