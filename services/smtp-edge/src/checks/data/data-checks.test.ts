import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { DataFacts } from '../../data/inspector.js';
import type { MessageBody } from '../../engine/check.js';
import { checkContext, config, facts, newSession, only, runPhase } from '../../fakes.test.js';
import { hopCount } from './hop-count.js';
import { lineEndings } from './line-endings.js';
import { lineLength } from './line-length.js';
import { messageSize } from './message-size.js';

/** The message as the DATA checks get it: here only its size matters to them. */
const message = (size: number): MessageBody => ({
  size,
  reader: () => Readable.from([Buffer.alloc(size, 'x')]),
});

const data = (f: DataFacts, yaml = '') => {
  const session = newSession();
  session.beginTransaction('alice@example.org', {});
  return checkContext('data', { input: { facts: f, message: message(f.bytes) }, cfg: config(yaml), session });
};

describe('message size', () => {
  const yaml = 'edge:\n  maxMessageBytes: 1000\n';
  const cfg = config(yaml);

  it('is violated only past edge.maxMessageBytes', () => {
    assert.equal(messageSize.violated?.(facts({ bytes: 1000 }), cfg), false);
    assert.equal(messageSize.violated?.(facts({ bytes: 1001 }), cfg), true);
  });

  it('refuses a message past the limit 552 5.3.4, naming the limit', async () => {
    const r = await runPhase('data', [messageSize], data(facts({ bytes: 1001 }), yaml));
    assert.deepEqual(r.refusal?.reply, {
      code: 552,
      enhanced: '5.3.4',
      text: 'Message size exceeds fixed maximum message size (1000 bytes) (ref s1)',
    });
    const d = only(r.records);
    assert.equal(d.outcome, 'fail');
    assert.deepEqual(d.attributes, { bytes: '1001' });
  });

  it('records nothing for a message within the limit', async () => {
    const r = await runPhase('data', [messageSize], data(facts({ bytes: 1000 }), yaml));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });
});

describe('line endings', () => {
  const normalize = 'edge:\n  protocol:\n    bareLineEndings: normalize\n';
  const bareLf = facts({ bytes: 100, bareLf: { count: 2, first: 40 } });

  it('is violated by any bare LF, bare CR or NUL in reject mode (the default)', () => {
    const cfg = config();
    assert.equal(lineEndings.violated?.(facts(), cfg), false);
    assert.equal(lineEndings.violated?.(bareLf, cfg), true);
    assert.equal(lineEndings.violated?.(facts({ bareCr: { count: 1, first: 3 } }), cfg), true);
    assert.equal(lineEndings.violated?.(facts({ nul: { count: 1, first: 3 } }), cfg), true);
  });

  it('is never violated in normalize mode', () => {
    const cfg = config(normalize);
    const all = facts({
      bareLf: { count: 1, first: 1 },
      bareCr: { count: 1, first: 2 },
      nul: { count: 1, first: 3 },
    });
    assert.equal(lineEndings.violated?.(all, cfg), false);
  });

  it('refuses a bare LF 554 5.6.0 with its count and first offset', async () => {
    const r = await runPhase('data', [lineEndings], data(bareLf));
    assert.deepEqual(r.refusal?.reply, {
      code: 554,
      enhanced: '5.6.0',
      text: 'Message refused: it contains a bare LF (line end without CR) (ref s1)',
    });
    const d = only(r.records);
    assert.equal(d.reasonCode, 'data.bare_lf');
    assert.equal(
      d.detail,
      'The message from <alice@example.org> (192.0.2.7) contains 2 bare LF, the first at octet 40.',
    );
    assert.deepEqual(d.attributes, { bare_lf: '2', bare_cr: '0', nul: '0' });
  });

  it('names the anomaly that came first in the message', async () => {
    const f = facts({
      bareLf: { count: 2, first: 40 },
      bareCr: { count: 3, first: 10 },
      nul: { count: 1, first: 25 },
    });
    const r = await runPhase('data', [lineEndings], data(f));
    assert.equal(r.refusal?.reason, 'data.bare_cr');
    assert.equal(r.refusal?.reply.text, 'Message refused: it contains a bare CR (ref s1)');
    assert.deepEqual(only(r.records).attributes, { bare_lf: '2', bare_cr: '3', nul: '1' });
    assert.match(only(r.records).detail ?? '', /contains 3 bare CR, the first at octet 10\.$/);

    const nulFirst = facts({ bareLf: { count: 1, first: 40 }, nul: { count: 4, first: 0 } });
    const r2 = await runPhase('data', [lineEndings], data(nulFirst));
    assert.equal(r2.refusal?.reason, 'data.nul');
    assert.equal(r2.refusal?.reply.text, 'Message refused: it contains NUL characters (ref s1)');
  });

  it('records nothing for a clean message', async () => {
    const r = await runPhase('data', [lineEndings], data(facts({ bytes: 100 })));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });

  it('records nothing in normalize mode, whatever the message held', async () => {
    const r = await runPhase('data', [lineEndings], data(bareLf, normalize));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });
});

describe('line length', () => {
  it('is violated past edge.limits.textLineOctets in reject mode (the default)', () => {
    const cfg = config();
    assert.equal(lineLength.violated?.(facts({ longestLine: 1000 }), cfg), false);
    assert.equal(lineLength.violated?.(facts({ longestLine: 1001 }), cfg), true);
    const larger = config('edge:\n  limits:\n    textLineOctets: 2000\n');
    assert.equal(lineLength.violated?.(facts({ longestLine: 1001 }), larger), false);
  });

  it('is never violated with longLines accept', () => {
    const cfg = config('edge:\n  protocol:\n    longLines: accept\n');
    assert.equal(lineLength.violated?.(facts({ longestLine: 100_000 }), cfg), false);
  });

  it('refuses a long line 500 5.5.2, naming the limit', async () => {
    const r = await runPhase('data', [lineLength], data(facts({ longestLine: 1500 })));
    assert.deepEqual(r.refusal?.reply, {
      code: 500,
      enhanced: '5.5.2',
      text: 'Line too long: message lines may have at most 1000 octets (ref s1)',
    });
    assert.equal(
      only(r.records).detail,
      'The message from <alice@example.org> (192.0.2.7) has a line of 1500 octets (limit 1000).',
    );
  });

  it('records nothing for short lines or with longLines accept', async () => {
    const ok = await runPhase('data', [lineLength], data(facts({ longestLine: 1000 })));
    assert.deepEqual(ok.records, []);
    const accept = await runPhase(
      'data',
      [lineLength],
      data(facts({ longestLine: 5000 }), 'edge:\n  protocol:\n    longLines: accept\n'),
    );
    assert.equal(accept.refusal, undefined);
    assert.deepEqual(accept.records, []);
  });
});

describe('hop count', () => {
  it('is violated past edge.limits.maxReceivedHeaders', () => {
    const cfg = config('edge:\n  limits:\n    maxReceivedHeaders: 30\n');
    assert.equal(hopCount.violated?.(facts({ receivedHeaders: 30 }), cfg), false);
    assert.equal(hopCount.violated?.(facts({ receivedHeaders: 31 }), cfg), true);
  });

  it('refuses a looping message 554 5.4.6 with the count', async () => {
    const r = await runPhase('data', [hopCount], data(facts({ receivedHeaders: 101 })));
    assert.deepEqual(r.refusal?.reply, {
      code: 554,
      enhanced: '5.4.6',
      text: 'Too many hops (101 Received headers): mail loop detected (ref s1)',
    });
    assert.equal(
      only(r.records).detail,
      'The message from <alice@example.org> carries 101 Received headers (limit 100).',
    );
  });

  it('records nothing up to the limit', async () => {
    const r = await runPhase('data', [hopCount], data(facts({ receivedHeaders: 100 })));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });
});
