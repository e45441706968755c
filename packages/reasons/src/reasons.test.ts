import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allReasons, explain, reason, replyFor } from './index.js';

describe('reason catalog', () => {
  it('has well-formed replies: 4xx/5xx with a matching RFC 3463 class', () => {
    for (const r of allReasons()) {
      assert.ok(r.summary && r.happened && r.resolve, `${r.code} lacks summary/happened/resolve`);
      if (!r.reply) continue;
      assert.match(String(r.reply.code), /^[45]\d\d$/, r.code);
      assert.match(r.reply.enhanced, /^[45]\.\d{1,3}\.\d{1,3}$/, r.code);
      assert.equal(r.reply.enhanced[0], String(r.reply.code)[0], `${r.code}: class of ${r.reply.enhanced}`);
    }
  });

  it('fills the session values into the reply and keeps it on one line', () => {
    const reply = replyFor('relay.denied', { recipient: 'x@remote.test\r\nRCPT TO:<y>' });
    assert.equal(reply.code, 550);
    assert.equal(reply.enhanced, '5.7.1');
    assert.ok(reply.text.includes('<x@remote.test RCPT TO:<y>>'));
  });

  it('explains a code with resolution, marking missing values', () => {
    const text = explain('dnsbl.listed', { client_ip: '192.0.2.7' });
    assert.match(text, /192\.0\.2\.7/);
    assert.match(text, /resolve: .*edge\.trustedNetworks/);
    assert.match(text, /\(unknown\)/);
  });

  it('refuses unknown codes', () => {
    assert.throws(() => reason('no.such.code'), /unknown reason code/);
  });
});
