// Two greylist replicas sharing state through NATS JetStream KV (greylist.store.type: nats-kv), with a
// real nats-server and two real greylist processes, called over gRPC as the edge calls them.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { credentials, Metadata } from '@grpc/grpc-js';
import { greylist } from '@smtpguard/contracts';
import { NatsKvGreylistStore } from '@smtpguard/greylist';
import { type LogLine, type RunningService, startService } from '@smtpguard/launcher';
import { freePort, type NatsServer, startNats } from '@smtpguard/testing';
import { buildConfig, writeConfig } from '../harness/system.js';

const DELAY_SECONDS = 2;
const BUCKET_PREFIX = 'e2e_greylist';

let nats: NatsServer;
const logs: LogLine[] = [];
const replicas: RunningService[] = [];
let clientA: greylist.GreylistServiceClient;
let clientB: greylist.GreylistServiceClient;
let store: NatsKvGreylistStore;

before(async () => {
  nats = await startNats();
  const { config } = await buildConfig({ natsUrl: nats.url, dnsServer: '127.0.0.1:53' });
  const [portA, portB] = await Promise.all([freePort(), freePort()]);
  const configFor = (port: number) => ({
    ...config,
    greylist: {
      ...config.greylist,
      listen: `127.0.0.1:${port}`,
      delaySeconds: DELAY_SECONDS,
      store: { type: 'nats-kv', bucketPrefix: BUCKET_PREFIX },
      autoWhitelist: { deliveries: 1000, intervalSeconds: 0 },
    },
  });
  const [a, b] = await Promise.all([writeConfig(configFor(portA)), writeConfig(configFor(portB))]);
  const onLog = process.env.SMTPGUARD_TEST_LOGS
    ? (_l: LogLine, raw: string) => process.stderr.write(`${raw}\n`)
    : undefined;
  // Started together: both create the buckets at the same time, which must work.
  const started = await Promise.allSettled([
    startService('greylist', { configPath: a.configPath, onLog }, logs),
    startService('greylist', { configPath: b.configPath, onLog }, logs),
  ]);
  for (const s of started) if (s.status === 'fulfilled') replicas.push(s.value);
  for (const s of started) if (s.status === 'rejected') throw s.reason;
  clientA = new greylist.GreylistServiceClient(`127.0.0.1:${portA}`, credentials.createInsecure());
  clientB = new greylist.GreylistServiceClient(`127.0.0.1:${portB}`, credentials.createInsecure());
  store = await NatsKvGreylistStore.open({
    servers: [nats.url],
    bucketPrefix: BUCKET_PREFIX,
    expirySeconds: config.greylist.expirySeconds ?? 35 * 24 * 3600,
  });
});

after(async () => {
  clientA?.close();
  clientB?.close();
  await store?.close();
  for (const r of replicas) {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
    const timer = setTimeout(() => r.child.kill('SIGKILL'), 5000);
    await r.exited;
    clearTimeout(timer);
  }
  await nats?.stop();
});

function check(
  client: greylist.GreylistServiceClient,
  clientIp: string,
  sender: string,
  recipient: string,
): Promise<greylist.CheckResponse> {
  const req = greylist.CheckRequest.fromPartial({
    session: { sessionId: randomUUID(), clientIp, sender },
    recipient,
  });
  return new Promise((resolve, reject) =>
    client.check(req, new Metadata(), { deadline: Date.now() + 10_000 }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Long enough for a triplet first seen now to be at least DELAY_SECONDS old (whole seconds). */
const waitDelay = () => sleep(DELAY_SECONDS * 1000 + 150);

const summary = (r: greylist.CheckResponse) => [greylist.actionToJSON(r.action), r.reasonCode];

describe('greylist replicas on NATS KV', () => {
  it('both replicas started on the nats-kv store', () => {
    const opened = logs.filter((l) => l.msg === 'greylist store open');
    assert.equal(opened.length, 2);
    for (const l of opened) assert.equal(l.store, 'nats-kv');
  });

  it('a triplet deferred through replica A passes through replica B after the delay', async () => {
    const sender = `first-${randomUUID()}@remote.example`;
    const rcpt = 'alice@example.test';
    const first = await check(clientA, '192.0.2.10', sender, rcpt);
    assert.deepEqual(summary(first), ['ACTION_DEFER', 'greylist.new']);
    assert.equal(first.retryAfterSeconds, DELAY_SECONDS);

    // B knows the triplet A recorded: an early retry, not a new triplet.
    const early = await check(clientB, '192.0.2.10', sender, rcpt);
    assert.deepEqual(summary(early), ['ACTION_DEFER', 'greylist.early_retry']);
    assert.equal(early.tripletKey, first.tripletKey);

    await waitDelay();
    const passed = await check(clientB, '192.0.2.10', sender, rcpt);
    assert.deepEqual(summary(passed), ['ACTION_PASS', 'greylist.passed']);
    assert.equal(passed.tripletKey, first.tripletKey);
    assert.ok(passed.delayedSeconds >= DELAY_SECONDS, `delayedSeconds ${passed.delayedSeconds}`);

    // And A sees that it passed.
    const again = await check(clientA, '192.0.2.10', sender, rcpt);
    assert.deepEqual(summary(again), ['ACTION_PASS', 'greylist.passed']);
  });

  it('counts every delivery of concurrent checks split across A and B (no lost update)', async (t) => {
    const clientNet = '198.51.100.0/24';
    const run = randomUUID().slice(0, 8);
    // Distinct recipients (senders are normalized: digits in the local part become #).
    const recipients = Array.from({ length: 40 }, (_, i) => `r${i}-${run}@example.test`);
    const sender = `pool-${run}@pool.example`;
    const checkAll = () =>
      Promise.all(
        recipients.map((r, i) => check(i % 2 ? clientB : clientA, `198.51.100.${1 + i}`, sender, r)),
      );

    const first = await checkAll();
    assert.deepEqual(new Set(first.map((r) => r.reasonCode)), new Set(['greylist.new']));
    assert.equal(await store.getClient(clientNet), undefined, 'deferred triplets count no delivery');

    await waitDelay();
    let started = performance.now();
    const passed = await checkAll();
    t.diagnostic(
      `40 concurrent first passes across 2 replicas: ${(performance.now() - started).toFixed(0)} ms`,
    );
    assert.deepEqual(new Set(passed.map(summary).map(String)), new Set(['ACTION_PASS,greylist.passed']));
    assert.equal((await store.getClient(clientNet))?.deliveries, 40);

    // The 40 triplets have passed now; each further delivery counts too (intervalSeconds: 0).
    started = performance.now();
    const again = await checkAll();
    t.diagnostic(`40 concurrent passes of passed triplets: ${(performance.now() - started).toFixed(0)} ms`);
    assert.deepEqual(new Set(again.map(summary).map(String)), new Set(['ACTION_PASS,greylist.passed']));
    assert.equal((await store.getClient(clientNet))?.deliveries, 80);
    assert.ok((await store.countTriplets()) >= 40);
  });
});
