import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { configSchema } from '@smtpguard/config';
import { type FakeDns, fakeDns } from '../fake-dns.test.js';
import { CachingResolver, reverseZone } from './resolver.js';

let dns: FakeDns;
const settings = (over: Record<string, unknown> = {}) =>
  configSchema.parse({ reputation: { dns: { servers: [dns.address], timeoutMs: 300, tries: 1, ...over } } })
    .reputation.dns;

before(async () => {
  dns = await fakeDns({
    'a.test': { A: ['192.0.2.1', '192.0.2.2'], ttl: 1 },
    'long.test': { A: ['192.0.2.3'], ttl: 3600 },
    'txt.test': { TXT: ['v=spf1 -all'] },
    'mx.test': {
      MX: [
        [10, 'mx1.test'],
        [0, 'mx0.test'],
      ],
    },
    'nodata.test': { A: ['192.0.2.9'] },
    '7.2.0.192.in-addr.arpa': { PTR: ['host.test'] },
  });
});
after(() => dns.close());

const count = (q: string) => dns.queries.filter((x) => x === q).length;

describe('CachingResolver', () => {
  it('answers in the shapes node:dns uses', async () => {
    const r = new CachingResolver(settings());
    assert.deepEqual((await r.resolve4('a.test')).sort(), ['192.0.2.1', '192.0.2.2']);
    assert.deepEqual(await r.resolveTxt('txt.test'), [['v=spf1 -all']]);
    const mx = await r.resolveMx('mx.test');
    assert.deepEqual(
      mx.sort((a, b) => a.priority - b.priority),
      [
        { exchange: 'mx0.test', priority: 0 },
        { exchange: 'mx1.test', priority: 10 },
      ],
    );
    assert.deepEqual(await r.reverse('192.0.2.7'), ['host.test']);
  });

  it('keeps an answer for its TTL, then asks again', async () => {
    const r = new CachingResolver(settings());
    const before = count('A a.test');
    await r.resolve4('a.test');
    await r.resolve4('A.TEST.');
    assert.equal(count('A a.test'), before + 1, 'the second question is a hit');
    assert.deepEqual(r.stats(), { hits: 1, misses: 1, joined: 0, queries: 1, entries: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await r.resolve4('a.test');
    assert.equal(count('A a.test'), before + 2, 'asked again after the TTL of 1 s');
  });

  it('caches NXDOMAIN and NODATA answers for the negative TTL of their SOA', async () => {
    const r = new CachingResolver(settings());
    const before = count('A none.test');
    await assert.rejects(r.resolve4('none.test'), { code: 'ENOTFOUND' });
    await assert.rejects(r.resolve4('none.test'), { code: 'ENOTFOUND' });
    assert.equal(count('A none.test'), before + 1);
    await assert.rejects(r.resolveTxt('nodata.test'), { code: 'ENODATA' });
    await assert.rejects(r.resolveTxt('nodata.test'), { code: 'ENODATA' });
    assert.equal(count('TXT nodata.test'), 1);
  });

  it('never caches failures: SERVFAIL and timeouts are asked again', async () => {
    dns.servfail.add('broken.test');
    dns.silent.add('slow.test');
    const r = new CachingResolver(settings());
    await assert.rejects(r.resolve4('x.broken.test'), { code: 'ESERVFAIL' });
    await assert.rejects(r.resolve4('x.broken.test'), { code: 'ESERVFAIL' });
    assert.equal(count('A x.broken.test'), 2);
    const t0 = Date.now();
    await assert.rejects(r.resolve4('x.slow.test'), { code: 'ETIMEOUT' });
    assert.ok(Date.now() - t0 >= 250, 'waited for the timeout');
  });

  it('asks once for concurrent identical questions', async () => {
    const r = new CachingResolver(settings());
    const before = count('A long.test');
    const all = await Promise.all(Array.from({ length: 20 }, () => r.resolve4('long.test')));
    assert.ok(all.every((a) => a[0] === '192.0.2.3'));
    assert.equal(count('A long.test'), before + 1);
    assert.equal(r.stats().joined, 19);
  });

  it('holds at most maxEntries answers, and bounds TTLs', async () => {
    const r = new CachingResolver(settings({ cache: { maxEntries: 2, maxTtlSeconds: 0 } }));
    await r.resolve4('long.test');
    assert.equal(r.stats().entries, 0, 'a TTL bounded to 0 is not kept');
    const r2 = new CachingResolver(settings({ cache: { maxEntries: 2 } }));
    await r2.resolve4('long.test');
    await r2.resolve4('a.test');
    await r2.resolveTxt('txt.test');
    assert.equal(r2.stats().entries, 2);
  });

  it('tries the next server when one does not answer', async () => {
    const r = new CachingResolver(settings({ servers: ['127.0.0.1:9', dns.address] }));
    assert.deepEqual(await r.resolve4('long.test'), ['192.0.2.3']);
  });

  it('builds reverse names', () => {
    assert.equal(reverseZone('192.0.2.7'), '7.2.0.192.in-addr.arpa');
    assert.equal(reverseZone('2001:db8::1'), `1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.ip6.arpa`);
  });
});
