import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkContext, config, newSession, only, runPhase } from '../../fakes.test.js';
import { heloFqdn } from './helo-fqdn.js';
import { heloLiteral } from './helo-literal.js';
import { type HeloName, parseHeloName } from './helo-name.js';
import { heloSyntax } from './helo-syntax.js';

/** A name of `length` octets (at most 319) made of labels of 63 octets, the last one shorter. */
function longName(length: number): string {
  return Array.from({ length: 5 }, () => 'a'.repeat(63))
    .join('.')
    .slice(0, length);
}

describe('parseHeloName', () => {
  const cases: Array<[string, HeloName]> = [
    ['mail.example.org', { kind: 'domain', name: 'mail.example.org', fqdn: true }],
    ['MAIL.Example.ORG', { kind: 'domain', name: 'mail.example.org', fqdn: true }],
    ['mail.example.org.', { kind: 'domain', name: 'mail.example.org', fqdn: true }],
    ['localhost', { kind: 'domain', name: 'localhost', fqdn: false }],
    ['localhost.', { kind: 'domain', name: 'localhost', fqdn: false }],
    ['WIN_PC01.corp.example', { kind: 'domain', name: 'win_pc01.corp.example', fqdn: true }],
    ['_dmarc.example.org', { kind: 'domain', name: '_dmarc.example.org', fqdn: true }],
    ['xn--bcher-kva.example', { kind: 'domain', name: 'xn--bcher-kva.example', fqdn: true }],
    ['host.123', { kind: 'domain', name: 'host.123', fqdn: false }],
    ['192.0.2.1', { kind: 'literal', ip: '192.0.2.1' }],
    ['[192.0.2.1]', { kind: 'literal', ip: '192.0.2.1' }],
    ['[IPv6:2001:DB8::1]', { kind: 'literal', ip: '2001:db8::1' }],
    ['[ipv6:::1]', { kind: 'literal', ip: '::1' }],
    ['[IPv6:::ffff:192.0.2.1]', { kind: 'literal', ip: '::ffff:192.0.2.1' }],
  ];
  for (const [arg, expected] of cases) {
    it(`reads ${JSON.stringify(arg)} as ${expected.kind}`, () => {
      assert.deepEqual(parseHeloName(arg), expected);
    });
  }

  const invalid = [
    '',
    '.',
    '..',
    'a..example.org',
    '.example.org',
    '-host.example.org',
    'host-.example.org',
    'exa mple.org',
    'host!.example.org',
    'mail.example.org..',
    '[2001:db8::1]',
    '[IPv6:192.0.2.1]',
    '[IPv6:2001:db8::g]',
    '[300.0.2.1]',
    '[192.0.2.1',
    '[]',
    '2001:db8::1',
    `${'a'.repeat(64)}.example.org`,
  ];
  for (const arg of invalid) {
    it(`refuses ${JSON.stringify(arg.length > 40 ? `${arg.slice(0, 20)}...` : arg)} as invalid`, () => {
      assert.deepEqual(parseHeloName(arg), { kind: 'invalid' });
    });
  }

  it('takes labels of 63 octets and names of 253 octets, with or without the trailing dot', () => {
    const name = longName(253);
    assert.equal(name.length, 253);
    assert.equal(parseHeloName(name).kind, 'domain');
    assert.equal(parseHeloName(`${name}.`).kind, 'domain');
    assert.equal(parseHeloName(`${'a'.repeat(63)}.example.org`).kind, 'domain');
  });

  it('refuses a name of 254 octets without the trailing dot', () => {
    const name = longName(254);
    assert.equal(name.length, 254);
    assert.ok(!name.endsWith('.'));
    assert.deepEqual(parseHeloName(name), { kind: 'invalid' });
  });
});

const helo = (arg: string, o: { yaml?: string; ip?: string; command?: 'HELO' | 'EHLO' } = {}) =>
  checkContext('helo', {
    input: { command: o.command ?? 'EHLO', arg },
    cfg: config(o.yaml),
    session: newSession({ ip: o.ip }),
  });

describe('helo-syntax', () => {
  it('refuses an invalid argument 501 5.5.2, naming the command', async () => {
    const r = await runPhase('helo', [heloSyntax], helo('bad..name'));
    assert.deepEqual(r.refusal?.reply, {
      code: 501,
      enhanced: '5.5.2',
      text: 'EHLO requires a valid domain name or address literal (ref s1)',
    });
    const d = only(r.records);
    assert.equal(d.outcome, 'fail');
    assert.match(d.detail ?? '', /^192\.0\.2\.7 sent EHLO "bad\.\.name", which is not a domain name/);
  });

  it('refuses an empty HELO', async () => {
    const r = await runPhase('helo', [heloSyntax], helo('', { command: 'HELO' }));
    assert.equal(r.refusal?.reply.text, 'HELO requires a valid domain name or address literal (ref s1)');
  });

  it('accepts domain names and address literals, recording nothing', async () => {
    for (const arg of ['mail.example.org', 'localhost', '[192.0.2.1]', '192.0.2.1', '[IPv6:2001:db8::1]']) {
      const r = await runPhase('helo', [heloSyntax], helo(arg));
      assert.equal(r.refusal, undefined, arg);
      assert.deepEqual(r.records, []);
    }
  });
});

describe('helo-fqdn', () => {
  const requireFqdn = 'edge:\n  protocol:\n    helo:\n      requireFqdn: true\n';

  it('is run only with edge.protocol.helo.requireFqdn', () => {
    assert.equal(heloFqdn.enabled?.(helo('localhost')), false);
    assert.equal(heloFqdn.enabled?.(helo('localhost', { yaml: requireFqdn })), true);
  });

  it('refuses a name without a domain part 504 5.5.2', async () => {
    const r = await runPhase('helo', [heloFqdn], helo('localhost', { yaml: requireFqdn, command: 'HELO' }));
    assert.deepEqual(r.refusal?.reply, {
      code: 504,
      enhanced: '5.5.2',
      text: 'HELO requires a fully qualified domain name (ref s1)',
    });
    assert.equal(
      only(r.records).detail,
      '192.0.2.7 introduced itself as "localhost", which has no domain part.',
    );
  });

  it('refuses a name with a numeric top-level label', async () => {
    const r = await runPhase('helo', [heloFqdn], helo('host.123', { yaml: requireFqdn }));
    assert.equal(r.refusal?.reason, 'helo.not_fqdn');
  });

  it('accepts a fully qualified name and address literals; invalid names are left to helo-syntax', async () => {
    for (const arg of ['mail.example.org', 'mail.example.org.', '[192.0.2.7]', '192.0.2.7', 'bad..name']) {
      const r = await runPhase('helo', [heloFqdn], helo(arg, { yaml: requireFqdn }));
      assert.equal(r.refusal, undefined, arg);
      assert.deepEqual(r.records, []);
    }
  });
});

describe('helo-literal', () => {
  it('is run by default and not with literalMustMatch false', () => {
    assert.equal(heloLiteral.enabled?.(helo('[192.0.2.7]')), true);
    const off = 'edge:\n  protocol:\n    helo:\n      literalMustMatch: false\n';
    assert.equal(heloLiteral.enabled?.(helo('[192.0.2.7]', { yaml: off })), false);
  });

  it("refuses a literal that is not the client's address 550 5.7.1", async () => {
    const r = await runPhase('helo', [heloLiteral], helo('[192.0.2.8]'));
    assert.deepEqual(r.refusal?.reply, {
      code: 550,
      enhanced: '5.7.1',
      text: 'The address literal in EHLO does not match your address 192.0.2.7 (ref s1)',
    });
    assert.equal(only(r.records).detail, '192.0.2.7 introduced itself as [192.0.2.8], another address.');
  });

  it('refuses a bare IPv4 address that is not the client', async () => {
    const r = await runPhase('helo', [heloLiteral], helo('192.0.2.8'));
    assert.equal(r.refusal?.reason, 'helo.literal_mismatch');
  });

  it('refuses an IPv6 literal from an IPv4 client', async () => {
    const r = await runPhase('helo', [heloLiteral], helo('[IPv6:2001:db8::7]'));
    assert.equal(r.refusal?.reason, 'helo.literal_mismatch');
  });

  const matching: Array<[string, string]> = [
    ['[192.0.2.7]', '192.0.2.7'],
    ['192.0.2.7', '192.0.2.7'],
    ['[192.0.2.7]', '::ffff:192.0.2.7'],
    ['[IPv6:::ffff:192.0.2.7]', '192.0.2.7'],
    ['[IPv6:2001:db8::7]', '2001:db8::7'],
    ['[IPv6:2001:0DB8:0:0:0:0:0:7]', '2001:db8::7'],
    ['[IPv6:2001:db8:0:0::7]', '2001:db8::7'],
  ];
  for (const [arg, ip] of matching) {
    it(`accepts ${arg} from ${ip} (the same address in another notation)`, async () => {
      const r = await runPhase('helo', [heloLiteral], helo(arg, { ip }));
      assert.equal(r.refusal, undefined);
      assert.deepEqual(r.records, []);
    });
  }

  it('refuses an IPv6 literal that differs from the IPv6 client in the last group', async () => {
    const r = await runPhase('helo', [heloLiteral], helo('[IPv6:2001:db8::8]', { ip: '2001:db8::7' }));
    assert.equal(r.refusal?.reason, 'helo.literal_mismatch');
  });

  it('accepts domain names without comparing anything', async () => {
    const r = await runPhase('helo', [heloLiteral], helo('mail.example.org'));
    assert.equal(r.refusal, undefined);
  });

  it('accepts the IPv4-mapped literal written in hex ([IPv6:::ffff:c000:207] is 192.0.2.7)', async () => {
    const r = await runPhase('helo', [heloLiteral], helo('[IPv6:::ffff:c000:207]', { ip: '192.0.2.7' }));
    assert.equal(r.refusal, undefined);
  });

  it('accepts an IPv6 literal with a dotted IPv4 tail that is the client address', async () => {
    const r = await runPhase(
      'helo',
      [heloLiteral],
      helo('[IPv6:2001:db8::192.0.2.7]', { ip: '2001:db8::c000:207' }),
    );
    assert.equal(r.refusal, undefined);
  });

  it('refuses an IPv6 literal with a dotted IPv4 tail that is another address', async () => {
    const r = await runPhase('helo', [heloLiteral], helo('[IPv6:2001:db8::0.0.0.1]', { ip: '2001:db8::' }));
    assert.equal(r.refusal?.reason, 'helo.literal_mismatch');
  });
});
