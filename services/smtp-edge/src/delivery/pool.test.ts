import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type CaptureServer, startCaptureServer } from '@smtpguard/testing';
import { DeliveryError } from './next-hop.js';
import { NextHopPool, type NextHopPoolOptions } from './pool.js';

describe('NextHopPool', { timeout: 20_000 }, () => {
  let server: CaptureServer;
  const pools: NextHopPool[] = [];

  function pool(over: Partial<NextHopPoolOptions> = {}): NextHopPool {
    const p = new NextHopPool({
      host: '127.0.0.1',
      port: server.port,
      lmtp: false,
      heloName: 'edge.test',
      timeoutMs: 2000,
      opportunisticTls: false,
      maxConnections: 2,
      idleTimeoutMs: 10_000,
      ...over,
    });
    pools.push(p);
    return p;
  }

  before(async () => {
    server = await startCaptureServer();
  });
  after(async () => {
    for (const p of pools) await p.close();
    await server.close();
  });

  it('reuses an idle connection', async () => {
    const p = pool();
    const before = server.connections;
    const a = await p.acquire();
    assert.equal(p.reused(a), false);
    p.release(a, true);
    assert.deepEqual(p.stats(), { open: 1, idle: 1, waiting: 0, created: 1 });
    const b = await p.acquire();
    assert.equal(b, a);
    assert.equal(p.reused(b), true);
    assert.deepEqual(p.stats(), { open: 1, idle: 0, waiting: 0, created: 1 });
    p.release(b, true);
    assert.equal(server.connections, before + 1);
  });

  it('closes a connection released as not reusable', async () => {
    const p = pool();
    const a = await p.acquire();
    p.release(a, false);
    assert.equal(a.usable, false);
    assert.deepEqual(p.stats(), { open: 0, idle: 0, waiting: 0, created: 1 });
    // Releasing twice does nothing.
    p.release(a, true);
    assert.equal(p.stats().idle, 0);
  });

  it('opens at most maxConnections; a waiter gets the next released connection', async () => {
    const p = pool({ maxConnections: 1 });
    const a = await p.acquire();
    const waiting = p.acquire();
    await delay(20);
    assert.deepEqual(p.stats(), { open: 1, idle: 0, waiting: 1, created: 1 });
    p.release(a, true);
    assert.equal(await waiting, a);
    assert.deepEqual(p.stats(), { open: 1, idle: 0, waiting: 0, created: 1 });
    p.release(a, true);
  });

  it('serves waiters in FIFO order, with a new connection when one was closed', async () => {
    const p = pool({ maxConnections: 1 });
    const a = await p.acquire();
    const order: number[] = [];
    const first = p.acquire().then((c) => {
      order.push(1);
      return c;
    });
    const second = p.acquire().then((c) => {
      order.push(2);
      return c;
    });
    await delay(20);
    p.release(a, false);
    const c1 = await first;
    assert.notEqual(c1, a);
    p.release(c1, true);
    assert.equal(await second, c1);
    assert.deepEqual(order, [1, 2]);
    assert.equal(p.stats().created, 2);
    p.release(c1, true);
  });

  it('a waiter gives up after timeoutMs', async () => {
    const p = pool({ maxConnections: 1, timeoutMs: 200 });
    const a = await p.acquire();
    const started = Date.now();
    await assert.rejects(
      p.acquire(),
      (err: unknown) => err instanceof DeliveryError && /200 ms/.test(err.message),
    );
    assert.ok(Date.now() - started < 1000);
    assert.equal(p.stats().waiting, 0);
    p.release(a, true);
    assert.equal(p.stats().idle, 1);
  });

  it('closes idle connections after idleTimeoutMs', async () => {
    const p = pool({ idleTimeoutMs: 100 });
    const a = await p.acquire();
    p.release(a, true);
    assert.equal(p.stats().idle, 1);
    await delay(300);
    assert.deepEqual(p.stats(), { open: 0, idle: 0, waiting: 0, created: 1 });
    assert.equal(a.usable, false);
  });

  it('forgets a connection the next hop closed while idle', async () => {
    const p = pool();
    const a = await p.acquire();
    p.release(a, true);
    server.dropConnections();
    for (let i = 0; i < 100 && p.stats().open > 0; i++) await delay(10);
    assert.deepEqual(p.stats(), { open: 0, idle: 0, waiting: 0, created: 1 });
    const b = await p.acquire();
    assert.notEqual(b, a);
    assert.equal(b.usable, true);
    p.release(b, true);
  });

  it('acquire({ fresh }) does not take an idle connection', async () => {
    const p = pool({ maxConnections: 1 });
    const a = await p.acquire();
    p.release(a, true);
    const b = await p.acquire({ fresh: true });
    assert.notEqual(b, a);
    assert.equal(a.usable, false);
    assert.deepEqual(p.stats(), { open: 1, idle: 0, waiting: 0, created: 2 });
    p.release(b, true);
  });

  it('close() rejects waiters and closes every connection', async () => {
    const p = pool({ maxConnections: 1 });
    const a = await p.acquire();
    const waiting = assert.rejects(p.acquire(), /pool closed/);
    await p.close();
    await waiting;
    assert.equal(a.usable, false);
    await assert.rejects(p.acquire(), /pool closed/);
    assert.equal(p.stats().open, 0);
  });

  it('rejects when the next hop cannot be reached and frees the slot', async () => {
    const gone = await startCaptureServer();
    const port = gone.port;
    await gone.close();
    const p = pool({ port, maxConnections: 1 });
    await assert.rejects(p.acquire(), DeliveryError);
    assert.equal(p.stats().open, 0);
    await assert.rejects(p.acquire(), DeliveryError);
    assert.equal(p.stats().created, 2);
  });
});
