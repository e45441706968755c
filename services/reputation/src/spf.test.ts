// RFC 7208 conformance of the SPF evaluation (mailauth in strict mode on the service's DNS cache), one or more
// cases for each section 4 to 8 that has a MUST, against a real DNS server on 127.0.0.1.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { configSchema } from '@smtpguard/config';
import { CachingResolver } from './dns/resolver.js';
import { type FakeDns, fakeDns } from './fake-dns.test.js';
import { checkSpf, spfVerdict } from './spf.js';

let dns: FakeDns;
const spf = (...txt: string[]) => ({ TXT: txt });

before(async () => {
  dns = await fakeDns({
    'pass.test': spf('v=spf1 ip4:192.0.2.0/24 -all'),
    'fail.test': spf('v=spf1 -all'),
    'soft.test': spf('v=spf1 ~all'),
    'neutral.test': spf('v=spf1 ?all'),
    'two.test': spf('v=spf1 -all', 'v=spf1 +all'),
    'notspf.test': spf('v=spf10 +all', 'something else'),
    'emptytxt.test': spf('', 'v=spf1 ip4:192.0.2.1 -all'),
    'unknown-mech.test': spf('v=spf1 foo:bar -all'),
    'bad-cidr.test': spf('v=spf1 ip4:192.0.2.0/33 -all'),
    'include.test': spf('v=spf1 include:pass.test -all'),
    'include-none.test': spf('v=spf1 include:nothing.test -all'),
    'a.test': { ...spf('v=spf1 a -all'), A: ['192.0.2.10'] },
    'a-cidr.test': { ...spf('v=spf1 a:host.a.test/24 -all') },
    'host.a.test': { A: ['198.51.100.1'] },
    'mx.test': { ...spf('v=spf1 mx -all'), MX: [[10, 'mail.mx.test']] },
    'mail.mx.test': { A: ['192.0.2.20'] },
    'ptr.test': spf('v=spf1 ptr -all'),
    '30.2.0.192.in-addr.arpa': { PTR: ['h.ptr.test'] },
    'h.ptr.test': { A: ['192.0.2.30'] },
    'ip6.test': spf('v=spf1 ip6:2001:db8::/32 -all'),
    'bare-ip6.test': spf('v=spf1 ip6 -all'),
    'exists.test': spf('v=spf1 exists:%{ir}.in.exists.test -all'),
    '40.2.0.192.in.exists.test': { A: ['127.0.0.2'] },
    'redirect.test': spf('v=spf1 redirect=pass.test'),
    'redirect-none.test': spf('v=spf1 redirect=nothing.test'),
    'exp.test': spf('v=spf1 -all exp=explain.exp.test'),
    'explain.exp.test': spf('%{i} may not send for %{d} (%{l}@%{o})'),
    'exp-empty.test': spf('v=spf1 -all exp=noexp.exp.test'),
    'macro.test': spf('v=spf1 include:%{l}.users.macro.test -all'),
    'jack.users.macro.test': spf('v=spf1 ip4:192.0.2.50 -all'),
    'bad-macro.test': spf('v=spf1 a:%{z}.bad-macro.test -all'),
    'colon.test': spf('v=spf1 a:foo:bar.colon.test -all'),
    'helo-macro.test': spf('v=spf1 exists:%{h}.h.helo-macro.test -all'),
    'good.client.test.h.helo-macro.test': { A: ['127.0.0.2'] },
    'client.test': spf('v=spf1 ip4:192.0.2.60 -all'),
    'loop.test': spf('v=spf1 include:loop.test -all'),
    'limit.test': spf(
      'v=spf1 a:n1.test a:n2.test a:n3.test a:n4.test a:n5.test a:n6.test a:n7.test a:n8.test a:n9.test a:n10.test a:n11.test -all',
    ),
    'void.test': spf('v=spf1 a:v1.test a:v2.test a:v3.test -all'),
  });
  for (let i = 1; i <= 11; i++) dns.table.set(`n${i}.test`, { A: ['198.51.100.99'] });
  dns.servfail.add('temp.test');
});
after(() => dns.close());

const resolver = () =>
  new CachingResolver(
    configSchema.parse({ reputation: { dns: { servers: [dns.address], timeoutMs: 500, tries: 1 } } })
      .reputation.dns,
  );

async function check(sender: string, ip: string, helo = 'client.test') {
  return checkSpf(resolver(), { sender, ip, helo, mta: 'mx.test', timeoutMs: 3000 });
}

const cases: Array<[section: string, sender: string, ip: string, result: string, helo?: string]> = [
  ['2.4 the null sender checks the HELO identity', '', '192.0.2.60', 'pass', 'client.test'],
  ['4.3 a malformed domain is none', 'user@-bad-.test', '192.0.2.1', 'none'],
  ['4.4 no SPF record is none', 'user@nothing.test', '192.0.2.1', 'none'],
  ['4.4 a DNS error while looking up the record is temperror', 'user@x.temp.test', '192.0.2.1', 'temperror'],
  ['4.5 two SPF records are permerror', 'user@two.test', '192.0.2.1', 'permerror'],
  ['4.5 records not starting with "v=spf1 " are ignored', 'user@notspf.test', '192.0.2.1', 'none'],
  ['4.5 an empty TXT record beside the SPF record is ignored', 'user@emptytxt.test', '192.0.2.1', 'pass'],
  ['4.6.1 an unknown mechanism is permerror', 'user@unknown-mech.test', '192.0.2.1', 'permerror'],
  ['4.6.4 more than 10 DNS mechanisms are permerror', 'user@limit.test', '192.0.2.1', 'permerror'],
  ['4.6.4 more than 2 void lookups are permerror', 'user@void.test', '192.0.2.1', 'permerror'],
  ['4.6.4 an include loop ends in permerror', 'user@loop.test', '192.0.2.1', 'permerror'],
  ['4.6.2 the default result is neutral', 'user@neutral.test', '192.0.2.1', 'neutral'],
  ['5.1 -all fails', 'user@fail.test', '192.0.2.1', 'fail'],
  ['5.1 ~all softfails', 'user@soft.test', '192.0.2.1', 'softfail'],
  ['5.2 include passes through a pass', 'user@include.test', '192.0.2.5', 'pass'],
  [
    '5.2 include of a domain without a record is permerror',
    'user@include-none.test',
    '192.0.2.5',
    'permerror',
  ],
  ['5.3 a matches the domain address', 'user@a.test', '192.0.2.10', 'pass'],
  ['5.3 a with a CIDR length', 'user@a-cidr.test', '198.51.100.77', 'pass'],
  ['5.4 mx matches an MX host address', 'user@mx.test', '192.0.2.20', 'pass'],
  ['5.4 mx does not match another address', 'user@mx.test', '192.0.2.21', 'fail'],
  ['5.5 ptr matches a validated name in the domain', 'user@ptr.test', '192.0.2.30', 'pass'],
  ['5.6 ip4 with an invalid CIDR length is permerror', 'user@bad-cidr.test', '192.0.2.1', 'permerror'],
  ['5.6 ip6 matches an IPv6 client', 'user@ip6.test', '2001:db8::25', 'pass'],
  ['5.6 ip6 does not match an IPv4 client', 'user@ip6.test', '192.0.2.1', 'fail'],
  ['5.6 a bare ip6 without an address is permerror', 'user@bare-ip6.test', '2001:db8::25', 'permerror'],
  ['5.7 exists with a reversed-IP macro', 'user@exists.test', '192.0.2.40', 'pass'],
  ['6.1 redirect takes the target result', 'user@redirect.test', '192.0.2.5', 'pass'],
  [
    '6.1 redirect to a domain without a record is permerror',
    'user@redirect-none.test',
    '192.0.2.5',
    'permerror',
  ],
  ['7.2 a macro in an include domain (local part)', 'jack@macro.test', '192.0.2.50', 'pass'],
  ['7.1 an unknown macro letter is permerror', 'user@bad-macro.test', '192.0.2.1', 'permerror'],
  ['7.1 a domain-spec with a colon is evaluated, not an error', 'user@colon.test', '192.0.2.1', 'fail'],
  ['7.3 %{h} expands the HELO name', 'user@helo-macro.test', '192.0.2.1', 'pass', 'good.client.test'],
  [
    '7.3 an invalid HELO in %{h} does not match (no error)',
    'user@helo-macro.test',
    '192.0.2.1',
    'fail',
    '[192.0.2.1]',
  ],
];

describe('SPF (RFC 7208)', () => {
  for (const [section, sender, ip, result, helo] of cases) {
    it(`${section}: ${result}`, async () => {
      const r = await check(sender, ip, helo);
      assert.equal(r.name, result, `${sender} from ${ip}: ${r.comment}`);
    });
  }

  it("6.2 the explanation of a fail is the domain's exp= text with macros expanded", async () => {
    const r = await check('joe@exp.test', '192.0.2.9');
    assert.equal(r.name, 'fail');
    assert.equal(r.explanation, '192.0.2.9 may not send for exp.test (joe@exp.test)');
  });

  it('6.2 without an explanation record the default one is given, and no explanation for other results', async () => {
    const r = await check('joe@exp-empty.test', '192.0.2.9');
    assert.equal(r.explanation, "192.0.2.9 is not one of exp-empty.test's designated mail servers");
    assert.equal((await check('joe@pass.test', '192.0.2.9')).explanation, '');
  });

  it('9.1 gives a Received-SPF header field', async () => {
    const r = await check('joe@pass.test', '192.0.2.9');
    assert.match(
      r.receivedSpf,
      /^Received-SPF: pass \(mx\.test: domain of joe@pass\.test designates 192\.0\.2\.9 as permitted sender\) client-ip=192\.0\.2\.9; envelope-from="?joe@pass\.test"?; helo=client\.test;$/,
    );
  });

  it('8 the result decides the action as configured (reputation.spf)', async () => {
    const rep = (spfSettings: Record<string, unknown>) =>
      configSchema.parse({ reputation: { spf: spfSettings } }).reputation;
    const fail = await check('joe@fail.test', '192.0.2.9');
    assert.equal(spfVerdict(rep({}), fail, 'joe@fail.test').action, 1, 'accept by default');
    const rejected = spfVerdict(rep({ fail: 'reject', failReplyCode: 554 }), fail, 'joe@fail.test');
    assert.deepEqual([rejected.action, rejected.reasonCode, rejected.replyCode], [2, 'spf.fail', 554]);
    const tagged = spfVerdict(rep({ fail: 'tag' }), fail, 'joe@fail.test');
    assert.equal(tagged.action, 4);
    assert.match(
      tagged.headers.join('\n'),
      /^Received-SPF: fail .*\nX-Smtpguard-Tag: spf; fail for fail\.test$/,
    );
    const soft = await check('joe@soft.test', '192.0.2.9');
    assert.equal(spfVerdict(rep({ softfail: 'defer' }), soft, 'joe@soft.test').action, 3);
    const temp = await check('joe@x.temp.test', '192.0.2.9');
    const deferred = spfVerdict(rep({}), temp, '');
    assert.deepEqual([deferred.action, deferred.reasonCode], [3, 'spf.temperror']);
    const perm = await check('joe@two.test', '192.0.2.9');
    assert.deepEqual([spfVerdict(rep({ permerror: 'reject' }), perm, '').reasonCode], ['spf.permerror']);
  });
});
