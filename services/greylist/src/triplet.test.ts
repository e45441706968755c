import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientNetwork, normalizeSender } from './triplet.js';

describe('normalizeSender', () => {
  const cases: Array<[string, string]> = [
    ['John.Doe@Example.COM', 'john.doe@example.com'],
    ['user+newsletter-42@example.com', 'user@example.com'],
    ['prvs=0123abcd=user@example.com', 'user@example.com'],
    ['SRS0=HHH=TT=orig.example=alice@forwarder.test', 'alice@orig.example'],
    ['SRS1=HHH=fwd1.test==HHH=TT=orig.example=alice@fwd2.test', 'alice@orig.example'],
    ['bounce-1234-5678@lists.example', 'bounce-#-#@lists.example'],
    ['', '<>'],
  ];
  for (const [input, want] of cases)
    it(`${input || '<>'} -> ${want}`, () => assert.equal(normalizeSender(input), want));
});

describe('clientNetwork', () => {
  it('IPv4 /24', () => assert.equal(clientNetwork('192.0.2.77', 24, 64), '192.0.2.0/24'));
  it('IPv4 by host', () => assert.equal(clientNetwork('192.0.2.77', 32, 128), '192.0.2.77/32'));
  it('IPv4-mapped IPv6 is IPv4', () =>
    assert.equal(clientNetwork('::ffff:192.0.2.77', 24, 64), '192.0.2.0/24'));
  it('IPv6 /64', () =>
    assert.equal(clientNetwork('2001:db8:1:2:3:4:5:6', 24, 64), '2001:db8:1:2:0:0:0:0/64'));
});
