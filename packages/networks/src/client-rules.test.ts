import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientRules } from './client-rules.js';

describe('ClientRules', () => {
  const rules = new ClientRules([
    '192.0.2.0/24',
    '198.51.100.1-20',
    'mail.example.org',
    '.outbound.protection.test',
    'mimecast.test',
  ]);
  it('matches IP rules', () => {
    assert.equal(rules.match('192.0.2.9'), '192.0.2.0/24');
    assert.equal(rules.match('198.51.100.20'), '198.51.100.1-20');
  });
  it('matches host names and domains on the verified reverse name only', () => {
    assert.equal(rules.match('203.0.113.1', 'mail.example.org'), 'mail.example.org');
    assert.equal(rules.match('203.0.113.1', 'x1.eu.outbound.protection.test.'), '.outbound.protection.test');
    assert.equal(rules.match('203.0.113.1', 'smtp-1.mimecast.test'), 'mimecast.test');
    assert.equal(rules.match('203.0.113.1', 'evilmimecast.test'), undefined);
    assert.equal(rules.match('203.0.113.1', ''), undefined);
  });
  it('refuses garbage', () => {
    assert.throws(
      () => new ClientRules(['not a rule']),
      /"not a rule" is not an IP, CIDR, mask, wildcard, range, host name or domain/,
    );
  });
});

describe('ClientRules wildcards', () => {
  it('takes *.domain as a domain rule and IP wildcards as IP rules', () => {
    const rules = new ClientRules(['*.relay.test', '10.0.*.*']);
    assert.equal(rules.hasNames, true);
    assert.equal(rules.matchIp('10.0.3.4'), '10.0.*.*');
    assert.equal(rules.matchName('a.relay.test'), '.relay.test');
    assert.equal(rules.matchIp('10.1.3.4'), undefined);
  });
});
