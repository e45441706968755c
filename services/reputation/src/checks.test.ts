// HELO host, sender domain and URI-list checks of the reputation service against a DNS server on 127.0.0.1.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { configSchema } from '@smtpguard/config';
import { createLogger } from '@smtpguard/logging';
import { checkContent, extractLinks } from './content.js';
import { CachingResolver } from './dns/resolver.js';
import { type FakeDns, fakeDns } from './fake-dns.test.js';
import { checkHelo } from './helo.js';
import { ListHealth } from './lists/health.js';
import { checkSenderDomain } from './sender-domain.js';

let dns: FakeDns;
before(async () => {
  dns = await fakeDns({
    'mx.client.test': { A: ['192.0.2.7'], AAAA: ['2001:db8::7'] },
    'other.client.test': { A: ['198.51.100.1'] },
    'mx.test': { MX: [[10, 'mail.mx.test']] },
    'amx.test': { A: ['192.0.2.1'] },
    'nomx.test': { TXT: ['v=spf1 -all'] },
    'nullmx.test': { MX: [[0, '']] },
    // URI lists: test points and listings.
    'test.uri.test': { A: ['127.0.0.2'] },
    'listed.example.uri.test': { A: ['127.0.0.4'] },
    'masked.example.uri.test': { A: ['127.0.0.64'] },
    '2.0.0.127.ip.test': { A: ['127.0.0.2'] },
    '9.9.9.198.ip.test': { A: ['127.0.0.2'] },
    '7.100.51.198.ip.test': { A: ['127.0.0.2'] },
    'bad-host.test': { A: ['198.51.100.7'] },
    'good-host.test': { A: ['198.51.100.8'] },
  });
  dns.servfail.add('broken.test');
});
after(() => dns.close());

const rep = (over: Record<string, unknown> = {}) =>
  configSchema.parse({
    reputation: { dns: { servers: [dns.address], timeoutMs: 300, tries: 1 }, ...over },
  }).reputation;
const resolver = () => new CachingResolver(rep().dns);

describe('checkHelo', () => {
  it('passes a name that resolves to the client (IPv4 and IPv6)', async () => {
    assert.equal(
      (await checkHelo(resolver(), rep(), '192.0.2.7', 'mx.client.test')).verdict.reasonCode,
      'helo.host_match',
    );
    assert.equal((await checkHelo(resolver(), rep(), '2001:db8::7', 'MX.client.test.')).matches, true);
  });
  it('refuses a name that does not exist or names another host; tags by setting', async () => {
    const missing = await checkHelo(resolver(), rep(), '192.0.2.7', 'nonexistent-host.invalid');
    assert.deepEqual([missing.verdict.action, missing.verdict.reasonCode], [2, 'helo.host_mismatch']);
    assert.equal(missing.verdict.vars.addresses, 'no address');
    const other = await checkHelo(resolver(), rep(), '192.0.2.7', 'other.client.test');
    assert.equal(other.verdict.vars.addresses, '198.51.100.1');
    const tagged = await checkHelo(
      resolver(),
      rep({ helo: { action: 'tag' } }),
      '192.0.2.7',
      'other.client.test',
    );
    assert.equal(tagged.verdict.reasonCode, 'helo.host_tagged');
    assert.match(
      tagged.verdict.headers[0] ?? '',
      /^X-Smtpguard-Tag: helo; other\.client\.test resolves to 198\.51\.100\.1/,
    );
  });
  it('records a DNS failure without refusing, and skips address literals', async () => {
    const r = await checkHelo(resolver(), rep(), '192.0.2.7', 'x.broken.test');
    assert.equal(r.verdict.reasonCode, 'helo.host_error');
    assert.equal(r.verdict.action, 1);
    assert.equal(
      (await checkHelo(resolver(), rep(), '192.0.2.7', '[192.0.2.7]')).verdict.reasonCode,
      'helo.host_skipped',
    );
  });
});

describe('checkSenderDomain', () => {
  const check = (sender: string, over = {}) => checkSenderDomain(resolver(), rep(over), sender);
  it('accepts a domain with MX, or with only an address (RFC 5321 5.1)', async () => {
    const mx = await check('a@mx.test');
    assert.deepEqual([mx.verdict.reasonCode, mx.mailHosts], ['sender.domain_ok', ['mail.mx.test']]);
    assert.equal((await check('a@amx.test')).verdict.reasonCode, 'sender.domain_ok');
  });
  it('refuses a domain without MX and address, one that does not exist, and a null MX', async () => {
    assert.equal((await check('a@nomx.test')).verdict.reasonCode, 'sender.no_mx');
    assert.equal((await check('a@nxdomain.test')).verdict.reasonCode, 'sender.domain_not_found');
    const nul = await check('a@nullmx.test');
    assert.deepEqual([nul.verdict.reasonCode, nul.nullMx], ['sender.null_mx', true]);
    assert.equal((await check('a@nomx.test', { senderDomain: { replyCode: 501 } })).verdict.replyCode, 501);
  });
  it('defers on DNS failure (never a refusal) and skips the null sender', async () => {
    const r = await check('a@x.broken.test');
    assert.deepEqual([r.verdict.action, r.verdict.reasonCode], [3, 'sender.domain_error']);
    assert.equal((await check('')).verdict.reasonCode, 'sender.domain_skipped');
  });
});

describe('URI lists', () => {
  it('extracts links from text and HTML (character references decoded), once per host', () => {
    const text =
      'see http://a.example/x and www.b.example/y, again http://a.example/z, c.test and 1.2.3.4/no';
    assert.deepEqual(
      extractLinks(text, false).map((l) => l.host),
      ['a.example', 'www.b.example', 'c.test'],
    );
    const html = '<a href="&#104;ttp://d.example/">x</a><img src="https://[2001:db8::1]/p.png">';
    assert.deepEqual(
      extractLinks(html, true).map((l) => l.host),
      ['d.example', '2001:db8::1'],
    );
  });

  const lists = (over: Record<string, unknown>) => {
    const r = rep({ listHealth: { enabled: true }, uribl: over });
    const res = new CachingResolver(r.dns);
    return {
      r,
      deps: { resolver: res, health: new ListHealth(() => res, createLogger('t', { level: 'silent' })) },
    };
  };

  it('refuses a link whose registered domain is listed, with answer bitmasks', async () => {
    const { r, deps } = lists({ zones: [{ zone: 'uri.test', bitmask: 4 }] });
    const hit = await checkContent(deps, r, {
      text: 'go to http://www.listed.example/buy',
      html: false,
      clientIp: '192.0.2.1',
    });
    assert.deepEqual(
      [hit.verdict.reasonCode, hit.verdict.vars.zone, hit.verdict.vars.host],
      ['uribl.listed', 'uri.test', 'www.listed.example'],
    );
    const masked = await checkContent(deps, r, {
      text: 'http://masked.example/',
      html: false,
      clientIp: '192.0.2.1',
    });
    assert.equal(masked.verdict.reasonCode, 'uribl.clean', 'answer 127.0.0.64 has no bit of the mask 4');
  });

  it('refuses links to a listed IP literal and to a host whose address is listed, with the list text and code', async () => {
    const { r, deps } = lists({
      ipZones: [
        {
          zone: 'ip.test',
          replyCode: 500,
          replyText: 'Message rejected because it contains links to an IP address that is blacklisted',
        },
      ],
    });
    const literal = await checkContent(deps, r, {
      text: 'http://198.9.9.9/x',
      html: false,
      clientIp: '192.0.2.1',
    });
    assert.deepEqual([literal.verdict.reasonCode, literal.verdict.replyCode], ['uribl.listed', 500]);
    const host = await checkContent(deps, r, {
      text: '<a href="http://bad-host.test/">x</a>',
      html: true,
      clientIp: '192.0.2.1',
    });
    assert.equal(host.verdict.vars.host, 'bad-host.test');
    const good = await checkContent(deps, r, {
      text: 'http://good-host.test/',
      html: false,
      clientIp: '192.0.2.1',
    });
    assert.equal(good.verdict.reasonCode, 'uribl.clean');
  });

  it('stops at maxLookups per message, tags by setting, and exempts exempt clients', async () => {
    const { r, deps } = lists({ zones: [{ zone: 'uri.test' }], maxLookups: 2 });
    const many = 'http://a1.example http://a2.example http://listed.example';
    const limited = await checkContent(deps, r, { text: many, html: false, clientIp: '192.0.2.1' });
    assert.deepEqual([limited.verdict.reasonCode, limited.lookups, limited.links], ['uribl.clean', 2, 3]);
    const t = lists({ zones: [{ zone: 'uri.test', action: 'tag' }] });
    const tagged = await checkContent(t.deps, t.r, {
      text: 'http://listed.example',
      html: false,
      clientIp: '192.0.2.1',
    });
    assert.equal(tagged.verdict.reasonCode, 'uribl.tagged');
    const ex = rep({ exemptClients: ['192.0.2.1'], uribl: { zones: [{ zone: 'uri.test' }] } });
    const e = await checkContent(t.deps, ex, {
      text: 'http://listed.example',
      html: false,
      clientIp: '192.0.2.1',
    });
    assert.equal(e.verdict.reasonCode, 'uribl.exempt');
  });
});
