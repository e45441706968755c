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

describe('NetworkList masks and wildcards', () => {
  const list = new NetworkList(['10.1.0.0/255.255.0.0', '192.168.*.*', '172.16.5.*']);
  it('matches dotted masks and trailing wildcards', () => {
    assert.equal(list.match('10.1.200.3'), '10.1.0.0/255.255.0.0');
    assert.equal(list.match('10.2.0.1'), undefined);
    assert.equal(list.match('192.168.77.1'), '192.168.*.*');
    assert.equal(list.match('172.16.5.250'), '172.16.5.*');
    assert.equal(list.match('172.16.6.1'), undefined);
  });
  it('refuses masks with holes and wildcards in the middle', () => {
    assert.throws(() => new NetworkList(['10.0.0.0/255.0.255.0']), /not contiguous/);
    assert.throws(() => new NetworkList(['10.*.0.1']), /only trailing octets/);
  });
});
