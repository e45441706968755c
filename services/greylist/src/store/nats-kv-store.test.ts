// NatsKvGreylistStore against a real nats-server (JetStream, started here), no mocks.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { parseConfig } from '@smtpguard/config';
import { freePort, type NatsServer as Nats, startNats, startNatsCluster } from '@smtpguard/testing';
import { openStore } from './index.js';
import { decodeKey, encodeKey, isTransient, NatsKvGreylistStore } from './nats-kv-store.js';
import type { ClientRecord, TripletRecord } from './store.js';

const EXPIRY = 3600;
let nats: Nats;
let n = 0;
/** A store on fresh buckets (own prefix per test), closed after the run. */
const opened: NatsKvGreylistStore[] = [];
async function open(prefix = `t${++n}`, expirySeconds = EXPIRY): Promise<NatsKvGreylistStore> {
  const s = await NatsKvGreylistStore.open({
    servers: [nats.url],
    bucketPrefix: prefix,
    expirySeconds,
    connectTimeoutMs: 2000,
  });
  opened.push(s);
  return s;
}

const triplet = (t: number, passedAt = 0): TripletRecord => ({
  firstSeen: t,
  lastSeen: t,
  passedAt,
  passCount: passedAt ? 1 : 0,
});

before(async () => {
  nats = await startNats();
});

after(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
  await nats?.stop();
});

describe('NatsKvGreylistStore: key encoding', () => {
  it('round-trips keys with | @ : / + and non-ASCII into KV-safe keys', () => {
    const keys = [
      '192.0.2.0/24|user@example.com|rcpt@example.org',
      'spf:example.com',
      '2001:db8:1::/64|a+tag@x.test|b@y.test',
      'client:ümlaut.example|x/y+z=',
      '.',
    ];
    for (const k of keys) {
      const e = encodeKey(k);
      assert.match(e, /^[-_a-zA-Z0-9]+$/, `encoded ${k}`);
      assert.equal(decodeKey(e), k);
    }
    assert.throws(() => encodeKey(''), /empty key/);
  });

  it('stores and lists such keys under their original text', async () => {
    const s = await open();
    const keys = ['2001:db8:1::/64|a+tag@x.test|b@y.test', '192.0.2.0/24|user@example.com|rcpt@example.org'];
    for (const k of keys) await s.updateTriplet(k, () => triplet(100));
    const listed = await s.listTriplets('', 10);
    assert.deepEqual(listed.map(([k]) => k).sort(), [...keys].sort());
    assert.deepEqual(await s.getTriplet(keys[0] as string), triplet(100));
    await s.updateClient('spf:example.com', () => ({ deliveries: 1, lastCountedAt: 5, lastSeen: 5 }));
    assert.deepEqual(await s.getClient('spf:example.com'), { deliveries: 1, lastCountedAt: 5, lastSeen: 5 });
  });
});

describe('NatsKvGreylistStore: triplets', () => {
  it('creates, updates from the current value, gets, lists by substring, counts and deletes', async () => {
    const s = await open();
    const k1 = '192.0.2.0/24|a@one.test|x@example.org';
    const k2 = '192.0.2.0/24|b@two.test|x@example.org';
    const k3 = '198.51.100.0/24|a@one.test|y@example.org';
    assert.equal(await s.getTriplet(k1), undefined);
    assert.equal(await s.countTriplets(), 0);
    assert.deepEqual(await s.listTriplets('', 10), []);

    const seen: Array<TripletRecord | undefined> = [];
    const created = await s.updateTriplet(k1, (cur) => {
      seen.push(cur);
      return triplet(1000);
    });
    assert.deepEqual(created, triplet(1000));
    assert.deepEqual([...seen], [undefined]);
    const updated = await s.updateTriplet(k1, (cur) => {
      seen.push(cur);
      return { ...(cur as TripletRecord), lastSeen: 1300, passedAt: 1300, passCount: 1 };
    });
    assert.deepEqual(seen[1], triplet(1000));
    assert.deepEqual(updated, { firstSeen: 1000, lastSeen: 1300, passedAt: 1300, passCount: 1 });
    assert.deepEqual(await s.getTriplet(k1), updated);

    await s.updateTriplet(k2, () => triplet(2000));
    await s.updateTriplet(k3, () => triplet(3000));
    assert.equal(await s.countTriplets(), 3);
    const byRcpt = await s.listTriplets('x@example.org', 10);
    assert.deepEqual(byRcpt.map(([k]) => k).sort(), [k1, k2]);
    assert.deepEqual(new Map(byRcpt).get(k2), triplet(2000));
    assert.deepEqual(
      (await s.listTriplets('198.51.100.', 10)).map(([k]) => k),
      [k3],
    );
    assert.equal((await s.listTriplets('', 2)).length, 2);
    assert.deepEqual(await s.listTriplets('nomatch', 10), []);
    assert.deepEqual(await s.listTriplets('', 0), []);

    assert.equal(await s.deleteTriplet(k1), true);
    assert.equal(await s.deleteTriplet(k1), false);
    assert.equal(await s.getTriplet(k1), undefined);
    assert.equal(await s.countTriplets(), 2);
    assert.deepEqual((await s.listTriplets('', 10)).map(([k]) => k).sort(), [k2, k3]);
    // Writing over the delete marker starts from nothing again.
    const again: Array<TripletRecord | undefined> = [];
    await s.updateTriplet(k1, (cur) => {
      again.push(cur);
      return triplet(4000);
    });
    assert.deepEqual(again, [undefined]);
    assert.deepEqual(await s.getTriplet(k1), triplet(4000));
    assert.equal(await s.countTriplets(), 3);
  });

  it('shares state between two stores (two connections) on the same buckets', async () => {
    const a = await open('shared');
    const b = await open('shared');
    await a.updateTriplet('k|s@x.test|r@y.test', () => triplet(10));
    assert.deepEqual(await b.getTriplet('k|s@x.test|r@y.test'), triplet(10));
    assert.equal(await b.deleteTriplet('k|s@x.test|r@y.test'), true);
    assert.equal(await a.getTriplet('k|s@x.test|r@y.test'), undefined);
  });
});

describe('NatsKvGreylistStore: clients', () => {
  it('creates, updates, gets and counts clients by deliveries', async () => {
    const s = await open();
    assert.equal(await s.getClient('192.0.2.0/24'), undefined);
    assert.equal(await s.countClients(1), 0);
    const inc = (cur: ClientRecord | undefined): ClientRecord => ({
      deliveries: (cur?.deliveries ?? 0) + 1,
      lastCountedAt: 50,
      lastSeen: 60,
    });
    for (let i = 0; i < 5; i++) await s.updateClient('192.0.2.0/24', inc);
    await s.updateClient('spf:example.com', inc);
    await s.updateClient('spf:example.com', inc);
    assert.deepEqual(await s.getClient('192.0.2.0/24'), { deliveries: 5, lastCountedAt: 50, lastSeen: 60 });
    assert.equal((await s.getClient('spf:example.com'))?.deliveries, 2);
    assert.equal(await s.countClients(5), 1);
    assert.equal(await s.countClients(2), 2);
    assert.equal(await s.countClients(6), 0);
  });

  it('loses no increment: 40 concurrent updateClient from two stores (two connections) end at 40', async (t) => {
    const prefix = 'race';
    const a = await open(prefix);
    const b = await open(prefix);
    const key = '203.0.113.0/24';
    let calls = 0;
    const inc = (cur: ClientRecord | undefined): ClientRecord => {
      calls++;
      return { deliveries: (cur?.deliveries ?? 0) + 1, lastCountedAt: 1, lastSeen: 1 };
    };
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).updateClient(key, inc)),
    );
    const ms = performance.now() - started;
    t.diagnostic(`40 concurrent updates from 2 connections: ${ms.toFixed(1)} ms, fn ran ${calls} times`);
    assert.equal((await a.getClient(key))?.deliveries, 40);
    assert.equal((await b.getClient(key))?.deliveries, 40);
    // Every update saw a distinct predecessor: the results are exactly 1..40.
    assert.deepEqual(
      results.map((r) => r.deliveries).sort((x, y) => x - y),
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    // Conflicts did happen (the compare-and-set retry path ran), and were resolved.
    assert.ok(calls > 40, `fn ran ${calls} times; expected retries after conflicts`);
  });
});

describe('NatsKvGreylistStore: whitelist', () => {
  it('adds, lists, replaces (case-insensitive value) and removes entries', async () => {
    const s = await open();
    assert.deepEqual(await s.listWhitelist(), []);
    const e1 = { kind: 'client' as const, value: '192.0.2.0/24', comment: 'partner', createdAt: 10 };
    const e2 = { kind: 'recipient' as const, value: 'Sales@Example.org', comment: '', createdAt: 11 };
    await s.addWhitelist(e1);
    await s.addWhitelist(e2);
    const list = await s.listWhitelist();
    assert.deepEqual(
      list.sort((x, y) => x.createdAt - y.createdAt),
      [e1, e2],
    );
    const e2b = { ...e2, value: 'sales@example.org', comment: 'again', createdAt: 12 };
    await s.addWhitelist(e2b);
    const after2 = await s.listWhitelist();
    assert.equal(after2.length, 2);
    assert.deepEqual(
      after2.find((e) => e.kind === 'recipient'),
      e2b,
    );
    assert.equal(await s.removeWhitelist('recipient', 'SALES@example.org'), true);
    assert.equal(await s.removeWhitelist('recipient', 'sales@example.org'), false);
    assert.equal(await s.removeWhitelist('client', '198.51.100.0/24'), false);
    assert.deepEqual(await s.listWhitelist(), [e1]);
  });
});

describe('NatsKvGreylistStore: buckets', () => {
  it('creates <prefix>_triplets and _clients with max age = expirySeconds, _whitelist without, history 1', async () => {
    const s = await open('buckets', 7200);
    assert.deepEqual(s.buckets, {
      triplets: 'buckets_triplets',
      clients: 'buckets_clients',
      whitelist: 'buckets_whitelist',
    });
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const cfg = async (bucket: string) => (await jsm.streams.info(`KV_${bucket}`)).config;
      for (const b of ['buckets_triplets', 'buckets_clients']) {
        const c = await cfg(b);
        assert.equal(c.max_age, nanos(7200 * 1000), `${b} max_age`);
        assert.equal(c.max_msgs_per_subject, 1, `${b} history`);
      }
      const w = await cfg('buckets_whitelist');
      assert.equal(w.max_age, 0);
      assert.equal(w.max_msgs_per_subject, 1);

      // Reopening with the same config keeps the buckets and their data.
      await s.updateTriplet('kept|a@b.test|c@d.test', () => triplet(1));
      const same = await open('buckets', 7200);
      assert.deepEqual(await same.getTriplet('kept|a@b.test|c@d.test'), triplet(1));

      // A changed expirySeconds is applied to the existing buckets, data kept.
      const longer = await open('buckets', 9000);
      assert.equal((await cfg('buckets_triplets')).max_age, nanos(9000 * 1000));
      assert.equal((await cfg('buckets_clients')).max_age, nanos(9000 * 1000));
      assert.equal((await cfg('buckets_whitelist')).max_age, 0);
      assert.deepEqual(await longer.getTriplet('kept|a@b.test|c@d.test'), triplet(1));
    } finally {
      await nc.close();
    }
  });

  it('forgets triplets and clients not rewritten within the max age (server-side expiry)', async () => {
    const s = await open('expiry', 1);
    await s.updateTriplet('old|a@b.test|c@d.test', () => triplet(1));
    await s.updateClient('192.0.2.0/24', () => ({ deliveries: 1, lastCountedAt: 1, lastSeen: 1 }));
    await s.addWhitelist({ kind: 'client', value: '10.0.0.1', comment: '', createdAt: 1 });
    assert.equal(await s.countTriplets(), 1);
    // The server expires messages on a timer; allow a few seconds beyond the 1 s max age.
    const until = Date.now() + 10_000;
    while ((await s.getTriplet('old|a@b.test|c@d.test')) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 200));
    assert.equal(await s.getTriplet('old|a@b.test|c@d.test'), undefined);
    assert.equal(await s.getClient('192.0.2.0/24'), undefined);
    assert.equal(await s.countTriplets(), 0);
    assert.equal((await s.listWhitelist()).length, 1, 'the whitelist has no max age');
  });
});

describe('NatsKvGreylistStore: errors reach the caller', () => {
  it('open() rejects when no NATS server answers', async () => {
    const port = await freePort();
    await assert.rejects(
      NatsKvGreylistStore.open({
        servers: [`nats://127.0.0.1:${port}`],
        bucketPrefix: 'none',
        expirySeconds: 60,
        connectTimeoutMs: 500,
      }),
    );
  });

  it('operations reject while the server is gone, instead of answering "absent"', async () => {
    const own = await startNats();
    const s = await NatsKvGreylistStore.open({
      servers: [own.url],
      bucketPrefix: 'gone',
      expirySeconds: 60,
      connectTimeoutMs: 1000,
      requestTimeoutMs: 500,
    });
    await s.updateTriplet('k|a@b.test|c@d.test', () => triplet(1));
    await own.stop();
    await assert.rejects(s.getTriplet('k|a@b.test|c@d.test'));
    await assert.rejects(
      s.updateClient('192.0.2.0/24', () => ({ deliveries: 1, lastCountedAt: 1, lastSeen: 1 })),
    );
    await assert.rejects(s.countTriplets());
    // close() does not wait forever for a drain that cannot happen.
    const started = Date.now();
    await s.close(300);
    assert.ok(Date.now() - started < 2000, `close took ${Date.now() - started} ms`);
  });

  it('a closed store rejects further operations', async () => {
    const s = await NatsKvGreylistStore.open({
      servers: [nats.url],
      bucketPrefix: 'closed',
      expirySeconds: 60,
    });
    await s.close();
    await assert.rejects(s.getTriplet('k|a@b.test|c@d.test'));
  });
});

describe('NatsKvGreylistStore: a NATS cluster losing a node', () => {
  it('tells transient errors (no responders, timeouts, 503) from the rest', () => {
    const named = (name: string, extra: object = {}) => Object.assign(new Error(name), { name }, extra);
    assert.equal(isTransient(named('JetStreamNotEnabled')), true);
    assert.equal(isTransient(named('TimeoutError')), true);
    assert.equal(isTransient(named('NoRespondersError')), true);
    assert.equal(isTransient(named('JetStreamApiError', { status: 503 })), true);
    assert.equal(isTransient(named('JetStreamApiError', { status: 400 })), false);
    assert.equal(isTransient(named('ClosedConnectionError')), false);
    assert.equal(isTransient(new Error('greylist store: empty key')), false);
    assert.equal(isTransient('timeout'), false);
  });

  it('answers every read and write while the leader of its buckets is killed and a new one elected', async () => {
    const cluster = await startNatsCluster(3);
    const s = await NatsKvGreylistStore.open({
      servers: cluster.url.split(','),
      bucketPrefix: 'failover',
      expirySeconds: 600,
      replicas: 3,
      connectTimeoutMs: 1000,
      retryMs: 15_000,
    });
    try {
      await s.updateClient('192.0.2.0/24', () => ({ deliveries: 0, lastCountedAt: 0, lastSeen: 0 }));
      const nc = await connect({ servers: cluster.url.split(',') });
      const leader = (await (await jetstreamManager(nc)).streams.info('KV_failover_clients')).cluster?.leader;
      await nc.close();
      const index = cluster.nodes.findIndex((_n, i) => leader === `node-${i}`);
      assert.ok(index >= 0, `leader ${leader}`);
      await cluster.nodes[index]?.kill();
      // 20 increments while the cluster elects a new leader: each answered, none lost.
      for (let i = 0; i < 20; i++) {
        await s.updateClient('192.0.2.0/24', (c) => ({
          deliveries: (c?.deliveries ?? 0) + 1,
          lastCountedAt: i,
          lastSeen: i,
        }));
      }
      const c = await s.getClient('192.0.2.0/24');
      // A write whose answer was lost in the election is read back and applied again: at least 20.
      assert.ok((c?.deliveries ?? 0) >= 20, `deliveries ${c?.deliveries}`);
    } finally {
      await s.close(500);
      await cluster.stop();
    }
  });
});

describe('openStore (greylist.store.type: nats-kv)', () => {
  const loaded = (yaml: string) => ({
    file: '/dev/null',
    config: parseConfig(yaml),
    statePath: (p: string) => join(tmpdir(), p),
  });

  it('refuses an empty nats.url with a message naming both keys', async () => {
    await assert.rejects(openStore(loaded('greylist: { store: { type: nats-kv } }')), (err: Error) =>
      err.message.startsWith('greylist.store.type is nats-kv but nats.url is empty'),
    );
  });

  it('opens the buckets named by bucketPrefix on the servers of nats.url (comma-separated)', async () => {
    const store = await openStore(
      loaded(
        `nats: { url: "nats://127.0.0.1:1, ${nats.url}", connectTimeoutMs: 1000 }\n` +
          'greylist: { expirySeconds: 600, store: { type: nats-kv, bucketPrefix: viaconfig } }',
      ),
    );
    try {
      assert.ok(store instanceof NatsKvGreylistStore);
      assert.deepEqual(store.buckets.triplets, 'viaconfig_triplets');
      await store.updateTriplet('a|b@c.test|d@e.test', () => triplet(7));
      const other = await open('viaconfig', 600);
      assert.deepEqual(await other.getTriplet('a|b@c.test|d@e.test'), triplet(7));
    } finally {
      await store.close();
    }
  });
});
