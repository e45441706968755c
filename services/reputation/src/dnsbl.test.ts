import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reverseName } from './dnsbl.js';

describe('reverseName', () => {
  it('reverses IPv4 octets', () => assert.equal(reverseName('192.0.2.99'), '99.2.0.192'));
  it('expands and reverses IPv6 nibbles (RFC 5782 example)', () =>
    assert.equal(
      reverseName('2001:db8:1:2:3:4:567:89ab'),
      'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2',
    ));
  it('expands ::', () =>
    assert.equal(reverseName('2001:db8::1'), `1.0.0.0${'.0'.repeat(20)}.8.b.d.0.1.0.0.2`));
  it('refuses non-addresses', () => assert.throws(() => reverseName('example.org'), /not an IP/));
});
