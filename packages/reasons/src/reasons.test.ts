import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  allReasons,
  explain,
  formatReply,
  REASON_CODES,
  reason,
  referenceIn,
  referenceOf,
  replyFor,
} from './index.js';

describe('reason catalog', () => {
  it('has well-formed replies: a reply code with a matching RFC 3463 class', () => {
    for (const r of allReasons()) {
      assert.ok(r.summary && r.happened && r.resolve, `${r.code} lacks summary/happened/resolve`);
      if (!r.reply) continue;
      assert.match(String(r.reply.code), /^[2-5]\d\d$/, r.code);
      if (r.reply.code >= 400) assert.ok(r.reply.enhanced, `${r.code}: a refusal needs an enhanced code`);
      if (!r.reply.enhanced) continue;
      assert.match(r.reply.enhanced, /^[245]\.\d{1,3}\.\d{1,3}$/, r.code);
      assert.equal(r.reply.enhanced[0], String(r.reply.code)[0], `${r.code}: class of ${r.reply.enhanced}`);
    }
  });

  it('generated codes are the catalog, in order', () => {
    assert.deepEqual(
      [...REASON_CODES],
      allReasons().map((r) => r.code),
    );
  });

  it('fills the session values into the reply and keeps it on one line', () => {
    const reply = replyFor('relay.denied', { recipient: 'x@remote.test\r\nRCPT TO:<y>' });
    assert.equal(reply.code, 550);
    assert.equal(reply.enhanced, '5.7.1');
    assert.ok(reply.text.includes('<x@remote.test RCPT TO:<y>>'));
  });

  it("passes another server's code on only within the catalog reply's class", () => {
    const vars = { hop_text: 'User unknown' };
    assert.deepEqual(replyFor('rcpt.nexthop_refused', vars, { code: 553, enhanced: '5.1.3' }), {
      code: 553,
      enhanced: '5.1.3',
      text: 'User unknown',
    });
    // A 2xx or 4xx from the next hop cannot turn a refusal reason into something else.
    assert.equal(replyFor('rcpt.nexthop_refused', vars, { code: 250, enhanced: '2.0.0' }).code, 550);
    assert.equal(replyFor('rcpt.nexthop_refused', vars, { code: 550, enhanced: '4.1.1' }).enhanced, '5.0.0');
  });

  it('formats replies with and without an enhanced code', () => {
    assert.equal(
      formatReply(replyFor('connect.greeting', { hostname: 'mx.example.test' })),
      '220 mx.example.test ESMTP smtpguard ready',
    );
    assert.equal(formatReply(replyFor('protocol.ok', {})), '250 2.0.0 OK');
  });

  it('explains a code with resolution, marking missing values', () => {
    const text = explain('dnsbl.listed', { client_ip: '192.0.2.7' });
    assert.match(text, /192\.0\.2\.7/);
    assert.match(text, /resolve: .*reputation\.exemptClients/);
    assert.match(text, /\(unknown\)/);
  });

  it('refuses unknown codes', () => {
    assert.throws(() => reason('no.such.code'), /unknown reason code/);
  });

  it('ends every refusal of a session with its reference, and no other reply', () => {
    const vars = { reference: referenceOf('0123456789abcdef'), recipient: 'x@remote.test' };
    assert.equal(vars.reference, '89abcdef');
    const refusal = replyFor('relay.denied', vars);
    assert.match(refusal.text, / \(ref 89abcdef\)$/);
    assert.equal(referenceIn(formatReply(refusal)), '89abcdef');
    const hop = replyFor('queue.nexthop_rejected', { ...vars, hop_text: 'no' }, { code: 550, text: 'Mine' });
    assert.equal(hop.text, 'Mine (ref 89abcdef)', "also with an administrator's or the next hop's words");
    assert.doesNotMatch(replyFor('queue.accepted', { ...vars, message_id: 'X' }).text, /ref/);
    assert.doesNotMatch(
      replyFor('relay.denied', { recipient: 'x@remote.test' }).text,
      /ref/,
      'no session, no ref',
    );
    assert.equal(referenceIn('550 5.7.1 Relaying denied'), undefined);
  });
});
