import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { grpcTarget } from './client.js';

describe('grpcTarget', () => {
  it('resolves a host name to every replica (dns), keeps an IP address as it is', () => {
    assert.equal(grpcTarget('smtpguard-greylist:7103'), 'dns:///smtpguard-greylist:7103');
    assert.equal(grpcTarget('127.0.0.1:7103'), '127.0.0.1:7103');
    assert.equal(grpcTarget('[::1]:7103'), '[::1]:7103');
  });

  it('balances over a list of IP replicas', () => {
    assert.equal(grpcTarget('127.0.0.1:7103, 127.0.0.1:7203'), 'ipv4:127.0.0.1:7103,127.0.0.1:7203');
    assert.equal(grpcTarget('[::1]:7103,[::1]:7203'), 'ipv6:[::1]:7103,[::1]:7203');
  });

  it('refuses a list of host names, or of mixed families', () => {
    assert.throws(
      () => grpcTarget('a.example:1,b.example:1'),
      /use one DNS name that resolves to every replica/,
    );
    assert.throws(() => grpcTarget('127.0.0.1:1,[::1]:1'), /one family/);
  });
});
