import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { configSchema } from '@smtpguard/config';
import { createLogger } from '@smtpguard/logging';
import { checkClient } from '../client.js';
import { CachingResolver } from '../dns/resolver.js';
import { type FakeDns, fakeDns } from '../fake-dns.test.js';
import { classify } from './answers.js';
import { ListHealth } from './health.js';

const silentLogger = createLogger('test', { level: 'silent' });
let dns: FakeDns;
const listed = (...a: string[]) => ({ A: a });

before(async () => {
  dns = await fakeDns({
    // Healthy lists: the RFC 5782 test point is listed, 127.0.0.1 is not.
    '2.0.0.127.bl.test': listed('127.0.0.2'),
    '9.2.0.192.bl.test': listed('127.0.0.2'),
    '2.0.0.127.defer.test': listed('127.0.0.2'),
    '9.2.0.192.defer.test': listed('127.0.0.3'),
    '2.0.0.127.half.test': listed('127.0.0.2'),
    '8.2.0.192.half.test': listed('127.0.0.2'),
    '2.0.0.127.half2.test': listed('127.0.0.2'),
    '8.2.0.192.half2.test': listed('127.0.0.2'),
    '2.0.0.127.wl.test': listed('127.0.9.1'),
    '9.2.0.192.wl.test': listed('127.0.9.1'),
    '2.0.0.127.err.test': listed('127.0.0.2'),
    '7.2.0.192.err.test': listed('127.255.255.254'),
  });
  // A list that answers everything.
  dns.dynamic = (name) => (name.endsWith('.wild.test') ? listed('127.0.0.2') : undefined);
});
after(() => dns.close());

const cfg = (rep: Record<string, unknown>) =>
  configSchema.parse({
    reputation: {
      dns: { servers: [dns.address], timeoutMs: 200, tries: 1 },
      fcrdns: { enabled: false },
      ...rep,
    },
  }).reputation;

function deps(rep: ReturnType<typeof cfg>) {
  const resolver = new CachingResolver(rep.dns);
  return { resolver, health: new ListHealth(() => resolver, silentLogger) };
}

describe('classify', () => {
  const rules = { zone: 'z', answers: [] as string[], bitmask: 0, errorAnswers: ['127.255.255.0/24'] };
  it('counts any 127/8 answer but 127.0.0.1 and the error codes', () => {
    assert.deepEqual(classify(rules, ['127.0.0.2', '127.0.0.1', '10.0.0.1', '127.255.255.254']), {
      listed: ['127.0.0.2'],
      errors: ['127.255.255.254'],
    });
  });
  it('counts only named answers, and answer bits', () => {
    assert.deepEqual(classify({ ...rules, answers: ['127.0.0.4-7'] }, ['127.0.0.2', '127.0.0.5']).listed, [
      '127.0.0.5',
    ]);
    assert.deepEqual(classify({ ...rules, bitmask: 8 }, ['127.0.0.2', '127.0.0.10']).listed, ['127.0.0.10']);
  });
});

describe('ListHealth (RFC 5782 5)', () => {
  it('passes a list with its test points, fails a wildcard, a silent and a broken list', async () => {
    dns.silent.add('slow.test');
    dns.servfail.add('broken.test');
    const rep = cfg({});
    const d = deps(rep);
    assert.equal(await d.health.ready('bl.test', 'ip'), true);
    assert.equal(await d.health.ready('wild.test', 'ip'), false);
    assert.equal(await d.health.ready('slow.test', 'ip'), false);
    assert.equal(await d.health.ready('broken.test', 'ip'), false);
    assert.equal(await d.health.ready('missing.test', 'ip'), false, 'no test point');
    const wild = d.health.snapshot().find((s) => s.zone === 'wild.test');
    assert.match(wild?.lastError ?? '', /1\.0\.0\.127 is listed .*answers everything/);
    assert.equal(wild?.disabledCount, 1);
  });

  it('enables a list again when it passes a later check', async () => {
    const rep = cfg({});
    const d = deps(rep);
    dns.silent.add('later.test');
    d.health.watch([{ zone: 'later.test', kind: 'ip' }], { enabled: true, intervalSeconds: 3600 });
    assert.equal(await d.health.ready('later.test', 'ip'), false);
    dns.silent.delete('later.test');
    dns.table.set('2.0.0.127.later.test', listed('127.0.0.2'));
    await d.health.checkAll();
    assert.equal(await d.health.ready('later.test', 'ip'), true);
    const s = d.health.snapshot()[0];
    assert.deepEqual([s?.checks, s?.failures, s?.enabled], [2, 1, true]);
    d.health.stop();
  });
});

describe('checkClient: scores and actions', () => {
  const zone = (z: string, o: Record<string, unknown> = {}) => ({ zone: z, ...o });

  it('a wildcard list never lists anyone: it is disabled', async () => {
    const rep = cfg({ dnsbl: { zones: [zone('wild.test')] } });
    const r = await checkClient(deps(rep), rep, '127.0.0.1');
    assert.equal(r.verdict.reasonCode, 'dnsbl.clean');
    assert.deepEqual(r.block.disabledZones, ['wild.test']);
  });

  it('rejects a listed client, or defers it for a deferring list, with the list text and code', async () => {
    const rep = cfg({
      dnsbl: {
        zones: [
          zone('bl.test', { replyText: 'Blocked by {zone}', replyCode: 550 }),
          zone('defer.test', { action: 'defer' }),
        ],
      },
    });
    const r = await checkClient(deps(rep), rep, '192.0.2.9');
    assert.equal(r.verdict.reasonCode, 'dnsbl.listed', 'reject is stronger than defer');
    assert.equal(r.verdict.replyText, 'Blocked by {zone}');
    assert.equal(r.verdict.replyCode, 550);
    assert.equal(r.verdict.vars.zones, 'bl.test, defer.test');
    assert.equal(r.score, 2);
    const only = cfg({ dnsbl: { zones: [zone('defer.test', { action: 'defer' })] } });
    assert.equal((await checkClient(deps(only), only, '192.0.2.9')).verdict.reasonCode, 'dnsbl.deferred');
  });

  it('adds weights up to the threshold, and allow lists subtract', async () => {
    const rep = cfg({ dnsbl: { zones: [zone('half.test', { weight: 0.5 })], threshold: 1 } });
    assert.equal(
      (await checkClient(deps(rep), rep, '192.0.2.8')).verdict.reasonCode,
      'dnsbl.below_threshold',
    );
    const two = cfg({
      dnsbl: {
        zones: [zone('half.test', { weight: 0.5 }), zone('half2.test', { weight: 0.5, action: 'tag' })],
      },
    });
    const r = await checkClient(deps(two), two, '192.0.2.8');
    assert.equal(r.verdict.reasonCode, 'dnsbl.listed');
    const allowed = cfg({ dnsbl: { zones: [zone('bl.test')] }, dnswl: { zones: [zone('wl.test')] } });
    const a = await checkClient(deps(allowed), allowed, '192.0.2.9');
    assert.equal(a.score, 0);
    assert.equal(a.verdict.reasonCode, 'dnsbl.below_threshold');
  });

  it('tags with a header field, exempts exempt clients, and treats error codes as failures', async () => {
    const tag = cfg({ dnsbl: { zones: [zone('bl.test', { action: 'tag' })] } });
    const t = await checkClient(deps(tag), tag, '192.0.2.9');
    assert.equal(t.verdict.reasonCode, 'dnsbl.tagged');
    assert.match(
      t.verdict.headers[0] ?? '',
      /^X-Smtpguard-Tag: dnsbl; bl\.test \(127\.0\.0\.2\); score=1\/1$/,
    );
    const exempt = cfg({ dnsbl: { zones: [zone('bl.test')] }, exemptClients: ['192.0.2.0/28'] });
    const e = await checkClient(deps(exempt), exempt, '192.0.2.9');
    assert.equal(e.verdict.reasonCode, 'dnsbl.exempt');
    assert.equal(e.verdict.vars.rule, '192.0.2.0/28');
    const err = cfg({ dnsbl: { zones: [zone('err.test')] } });
    const x = await checkClient(deps(err), err, '192.0.2.7');
    assert.equal(x.verdict.reasonCode, 'dnsbl.clean');
    assert.deepEqual(x.block.failedZones, ['err.test']);
  });
});
