import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkList } from './network-list.js';

describe('NetworkList', () => {
  const list = new NetworkList(['10.0.0.0/8', '192.168.0.1-50', '198.51.100.7', '2001:db8::/32']);
  it('matches CIDR, short range, single IP and IPv6', () => {
    assert.equal(list.match('10.1.2.3'), '10.0.0.0/8');
    assert.equal(list.match('192.168.0.50'), '192.168.0.1-50');
    assert.equal(list.match('::ffff:198.51.100.7'), '198.51.100.7');
    assert.equal(list.match('2001:db8::1'), '2001:db8::/32');
  });
  it('does not match outside', () => {
    assert.equal(list.match('192.168.0.51'), undefined);
    assert.equal(list.match('11.0.0.1'), undefined);
  });
  it('refuses garbage with the offending entry', () => {
    assert.throws(() => new NetworkList(['mail.example.org/24']), /"mail.example.org\/24" is not an IP/);
  });
});
