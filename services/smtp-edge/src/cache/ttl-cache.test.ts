import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auth, reputation } from '@smtpguard/contracts';
import { clientReputation, somethingToCheck } from '../checks/connect/client-reputation.js';
import { recipient } from '../checks/rcpt/recipient.js';
import {
  backendDown,
  checkContext,
  config,
  FakeBackends,
  newSession,
  rcptContext,
  runPhase,
} from '../fakes.test.js';
import { LookupCaches, settled } from './lookups.js';
import { TtlCache } from './ttl-cache.js';

/** A clock the test moves by hand (no timers, no sleeping). */
function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('TtlCache', () => {
  it('serves an answer until ttl has passed, then asks again', async () => {
    const c = clock();
    const cache = new TtlCache<string>(10_000, 100, c.now);
    let calls = 0;
    const load = async () => `answer ${++calls}`;
    assert.equal(await cache.through('k', load), 'answer 1');
    c.advance(9_999);
    assert.equal(await cache.through('k', load), 'answer 1');
    c.advance(1);
    assert.equal(await cache.through('k', load), 'answer 2');
    assert.equal(calls, 2);
  });

  it('keeps no failed lookup', async () => {
    const cache = new TtlCache<string>(10_000, 100, clock().now);
    await assert.rejects(
      cache.through('k', async () => {
        throw new Error('down');
      }),
      /down/,
    );
    assert.equal(cache.size, 0);
    assert.equal(await cache.through('k', async () => 'up'), 'up');
  });

  it('shares one call among concurrent lookups of a key', async () => {
    const cache = new TtlCache<number>(10_000, 100, clock().now);
    let calls = 0;
    let release: (v: number) => void = () => undefined;
    const load = () => {
      calls += 1;
      return new Promise<number>((r) => {
        release = r;
      });
    };
    const a = cache.through('k', load);
    const b = cache.through('k', load);
    release(7);
    assert.deepEqual(await Promise.all([a, b]), [7, 7]);
    assert.equal(calls, 1);
  });

  it('keeps only the answers `keep` accepts', async () => {
    const cache = new TtlCache<string>(10_000, 100, clock().now);
    let calls = 0;
    const load = async () => (++calls === 1 ? 'temperror' : 'pass');
    const keep = (v: string) => v !== 'temperror';
    assert.equal(await cache.through('k', load, keep), 'temperror');
    assert.equal(await cache.through('k', load, keep), 'pass');
    assert.equal(await cache.through('k', load, keep), 'pass');
    assert.equal(calls, 2);
  });

  it('drops the oldest entry at maxEntries', async () => {
    const cache = new TtlCache<number>(10_000, 2, clock().now);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('c', 3);
    assert.equal(cache.size, 2);
    assert.equal(cache.get('a'), undefined);
    assert.equal(cache.get('c'), 3);
  });

  it('is off with ttl 0 or maxEntries 0: every lookup is a call', async () => {
    for (const cache of [new TtlCache<number>(0, 100), new TtlCache<number>(10_000, 0)]) {
      let calls = 0;
      await cache.through('k', async () => ++calls);
      await cache.through('k', async () => ++calls);
      assert.equal(calls, 2);
      assert.equal(cache.size, 0);
    }
  });

  it('clear() forgets everything, also an answer still on its way', async () => {
    const cache = new TtlCache<number>(10_000, 100, clock().now);
    cache.set('a', 1);
    let release: (v: number) => void = () => undefined;
    const late = cache.through(
      'b',
      () =>
        new Promise<number>((r) => {
          release = r;
        }),
    );
    cache.clear();
    release(2);
    assert.equal(await late, 2);
    assert.equal(cache.get('a'), undefined);
    assert.equal(cache.get('b'), undefined, 'asked before clear(): not kept');
  });
});

describe('edge lookups through the cache', () => {
  const caches = (c = clock()) =>
    new LookupCaches(
      { directorySeconds: 10, clientReputationSeconds: 60, senderChecksSeconds: 30, maxEntries: 100 },
      c.now,
    );

  it('asks the directory once for the same recipient, sender and account, again for another sender', async () => {
    const backends = new FakeBackends({
      resolveRecipient: () =>
        auth.ResolveRecipientResponse.fromPartial({
          status: auth.RecipientStatus.RECIPIENT_STATUS_MAILBOX,
          domain: 'example.test',
        }),
    });
    const shared = caches();
    for (let i = 0; i < 3; i++) {
      const r = await runPhase(
        'rcpt',
        [recipient],
        rcptContext('bob@example.test', { backends, caches: shared }),
      );
      assert.equal(r.records[0]?.reasonCode, 'rcpt.local', 'a decision every time, cached or not');
    }
    assert.equal(backends.requests('resolveRecipient').length, 1);
    const other = newSession();
    other.beginTransaction('carol@example.org', {});
    await runPhase(
      'rcpt',
      [recipient],
      rcptContext('bob@example.test', { backends, caches: shared, session: other }),
    );
    assert.equal(backends.requests('resolveRecipient').length, 2);
  });

  it('does not keep a failed directory lookup', async () => {
    let up = false;
    const backends = new FakeBackends({
      resolveRecipient: () => {
        if (!up) throw backendDown('auth', 'resolveRecipient');
        return auth.ResolveRecipientResponse.fromPartial({
          status: auth.RecipientStatus.RECIPIENT_STATUS_MAILBOX,
          domain: 'example.test',
        });
      },
    });
    const shared = caches();
    const first = await runPhase(
      'rcpt',
      [recipient],
      rcptContext('bob@example.test', { backends, caches: shared }),
    );
    assert.equal(first.refusal?.reply.code, 451);
    up = true;
    const second = await runPhase(
      'rcpt',
      [recipient],
      rcptContext('bob@example.test', { backends, caches: shared }),
    );
    assert.equal(second.refusal, undefined);
    assert.equal(backends.requests('resolveRecipient').length, 2);
  });

  it('looks a client IP up once per clientReputationSeconds', async () => {
    const c = clock();
    const shared = caches(c);
    const backends = new FakeBackends({
      checkClient: () =>
        reputation.CheckClientResponse.fromPartial({
          verdict: { action: reputation.ListAction.LIST_ACTION_NONE, reasonCode: 'dnsbl.clean' },
        }),
    });
    const cfg = config('reputation:\n  dnsbl:\n    zones: [{ zone: bl.test }]\n');
    const connect = async () => {
      const ctx = checkContext('connect', { input: {}, backends, caches: shared, cfg });
      await runPhase('connect', [clientReputation], ctx);
      assert.equal((await ctx.session.reputation)?.kind, 'verdict');
    };
    await connect();
    await connect();
    assert.equal(backends.requests('checkClient').length, 1);
    c.advance(60_000);
    await connect();
    assert.equal(backends.requests('checkClient').length, 2);
  });

  it('never keeps a verdict that says the DNS lookup failed', () => {
    const v = (reasonCode: string) => ({ verdict: { reasonCode } });
    assert.equal(settled(v('spf.pass')), true);
    assert.equal(settled(v('spf.fail')), true);
    assert.equal(settled(v('spf.temperror')), false);
    assert.equal(settled(v('helo.host_error')), false);
    assert.equal(settled(v('sender.domain_error')), false);
  });

  it('makes no call at connect when no list is configured and FCrDNS is off', () => {
    assert.equal(somethingToCheck(config('reputation:\n  fcrdns: { enabled: false }\n')), false);
    assert.equal(somethingToCheck(config('')), true, 'FCrDNS is on by default');
    assert.equal(
      somethingToCheck(
        config('reputation:\n  fcrdns: { enabled: false }\n  dnswl:\n    zones: [{ zone: wl.test }]\n'),
      ),
      true,
    );
  });
});
