import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type NatsServer, startNats } from '@smtpguard/testing';
import { FileKvStore } from './file-store.js';
import { NatsKvStore } from './nats-store.js';
import { KEEP } from './store.js';

describe('FileKvStore', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sg-kv-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('updates, keeps, deletes and survives a restart', async () => {
    const path = join(dir, 'a.jsonl');
    const s = new FileKvStore(path);
    const b = await s.bucket<{ n: number }>('counters', { maxAgeSeconds: 0 });
    for (let i = 0; i < 5; i++) await b.update('x', (c) => ({ n: (c?.n ?? 0) + 1 }));
    assert.deepEqual(await b.get('x'), { n: 5 });
    assert.deepEqual(await b.update('x', () => KEEP), { n: 5 });
    await b.update('y', () => ({ n: 1 }));
    assert.equal(await b.delete('y'), true);
    assert.equal(await b.delete('y'), false);
    await s.close();
    const again = new FileKvStore(path);
    const b2 = await again.bucket<{ n: number }>('counters', { maxAgeSeconds: 0 });
    assert.deepEqual(await b2.get('x'), { n: 5 });
    assert.equal(await b2.get('y'), undefined);
    assert.deepEqual(await b2.entries('', 10), [['x', { n: 5 }]]);
    await again.close();
  });

  it('forgets keys not written for maxAgeSeconds', async () => {
    let now = 1_000_000;
    const s = new FileKvStore(join(dir, 'b.jsonl'), () => now);
    const b = await s.bucket<string>('logins', { maxAgeSeconds: 60 });
    await b.update('ip', () => 'alice');
    now += 59_000;
    assert.equal(await b.get('ip'), 'alice');
    now += 1_000;
    assert.equal(await b.get('ip'), undefined);
    await b.update('ip2', () => 'bob');
    now += 61_000;
    assert.equal(s.sweep(), 1);
    await s.close();
  });
});

describe('NatsKvStore (real nats-server)', () => {
  let nats: NatsServer;
  before(async () => {
    nats = await startNats();
  });
  after(() => nats?.stop());

  it('loses no increment when two stores update one key concurrently', async () => {
    const a = await NatsKvStore.open({ servers: [nats.url], prefix: 'unit' });
    const b = await NatsKvStore.open({ servers: [nats.url], prefix: 'unit' });
    const [ba, bb] = await Promise.all([
      a.bucket<number>('count', { maxAgeSeconds: 3600 }),
      b.bucket<number>('count', { maxAgeSeconds: 3600 }),
    ]);
    const N = 100;
    await Promise.all(
      Array.from({ length: N }, (_, i) => (i % 2 ? ba : bb).update('k|x@y', (c) => (c ?? 0) + 1)),
    );
    assert.equal(await ba.get('k|x@y'), N);
    assert.deepEqual(await bb.entries('k|', 10), [['k|x@y', N]]);
    assert.equal(await ba.delete('k|x@y'), true);
    assert.equal(await bb.get('k|x@y'), undefined);
    await a.close();
    await b.close();
  });

  it('takes a hot key: hundreds of updates of one key at once, from two stores, none failing', async () => {
    const a = await NatsKvStore.open({ servers: [nats.url], prefix: 'hot' });
    const b = await NatsKvStore.open({ servers: [nats.url], prefix: 'hot' });
    const [ba, bb] = await Promise.all([
      a.bucket<number>('count', { maxAgeSeconds: 3600 }),
      b.bucket<number>('count', { maxAgeSeconds: 3600 }),
    ]);
    // All in flight together: without serializing a process's own updates of a key, most of them would keep
    // losing the compare-and-set race and give up after MAX_UPDATE_ATTEMPTS.
    const N = 400;
    const results = await Promise.allSettled(
      Array.from({ length: N }, (_, i) => (i % 2 ? ba : bb).update('hot', (c) => (c ?? 0) + 1)),
    );
    assert.deepEqual(
      results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
      [],
    );
    assert.equal(await ba.get('hot'), N);
    await a.close();
    await b.close();
  });
});
