import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalIp } from './ip.js';

describe('canonicalIp', () => {
  it('spells IPv4 and IPv4-mapped IPv6 the same way', () => {
    assert.equal(canonicalIp('192.0.2.7'), '192.0.2.7');
    assert.equal(canonicalIp('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(canonicalIp('::FFFF:c000:207'), '192.0.2.7');
    assert.equal(canonicalIp('0:0:0:0:0:ffff:c000:0207'), '192.0.2.7');
  });

  it('spells IPv6 as eight groups whatever the notation', () => {
    const canonical = '2001:db8:1:2:0:0:0:5';
    assert.equal(canonicalIp('2001:db8:1:2::5'), canonical);
    assert.equal(canonicalIp('2001:0DB8:0001:0002:0000::0005'), canonical);
    assert.equal(canonicalIp('2001:db8::192.0.2.7'), '2001:db8:0:0:0:0:c000:207');
    assert.equal(canonicalIp('2001:db8::0.0.0.1'), canonicalIp('2001:db8::1'));
    assert.notEqual(canonicalIp('2001:db8::0.0.0.1'), canonicalIp('2001:db8::'));
  });

  it('is undefined for what is not an address', () => {
    assert.equal(canonicalIp('mail.example.org'), undefined);
    assert.equal(canonicalIp('300.1.1.1'), undefined);
  });
});
