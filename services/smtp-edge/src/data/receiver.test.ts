import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { DeliveryError } from '../delivery/next-hop.js';
import { CollectingSink, FakeHopTransaction } from '../fakes.test.js';
import type { DataFacts } from './inspector.js';
import { type Received, receiveMessage } from './receiver.js';

const HEAD = 'Received: from client.example.org by mx.example.test\r\n';
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Writes the chunks one at a time (each read on its own), then ends the stream unless told not to. */
async function feed(source: PassThrough, chunks: string[], end = true): Promise<void> {
  for (const chunk of chunks) {
    source.write(Buffer.from(chunk, 'latin1'));
    await tick();
  }
  if (end) source.end();
}

function receive(
  source: PassThrough,
  hop: FakeHopTransaction,
  o: { normalize?: boolean; violated?: (facts: DataFacts) => boolean } = {},
): Promise<Received> {
  return receiveMessage(source, {
    head: HEAD,
    hop,
    normalize: o.normalize ?? false,
    violated: o.violated ?? (() => false),
  });
}

/** A message larger than the stream buffers, so it is only complete when it was really read. */
const big = Array.from({ length: 40 }, (_, i) => `${String(i).padStart(4, '0')}${'x'.repeat(4090)}\r\n`);
const bigBytes = big.reduce((n, c) => n + c.length, 0);

describe('receiveMessage', { timeout: 5000 }, () => {
  it('forwards the head and the message to the next hop and waits until the sink has it all', async () => {
    const sink = new CollectingSink();
    const hop = new FakeHopTransaction({ data: async () => ({ stream: sink }) });
    const source = new PassThrough();
    const received = receive(source, hop);
    await feed(source, ['Subject: hi\r\n', '\r\nHello\r\n']);
    const r = await received;
    assert.equal(sink.text, `${HEAD}Subject: hi\r\n\r\nHello\r\n`);
    assert.equal(sink.writableFinished, true);
    assert.equal(r.forwarded, true);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, 22);
    assert.equal(r.dataRefusal, undefined);
    assert.equal(r.streamError, undefined);
    assert.equal(hop.dataCalls, 1);
    assert.equal(hop.aborts, 0);
  });

  it('resolves only after the sink finished', async () => {
    let finished = false;
    const sink = new Writable({
      write(_chunk, _enc, done) {
        done();
      },
      final(done) {
        setTimeout(() => {
          finished = true;
          done();
        }, 20);
      },
    });
    const source = new PassThrough();
    const received = receive(source, new FakeHopTransaction({ data: async () => ({ stream: sink }) }));
    await feed(source, ['x\r\n']);
    const r = await received;
    assert.equal(finished, true);
    assert.equal(r.forwarded, true);
  });

  it('forwards a large message whole', async () => {
    const sink = new CollectingSink();
    const source = new PassThrough();
    const received = receive(source, new FakeHopTransaction({ data: async () => ({ stream: sink }) }));
    await feed(source, big);
    const r = await received;
    assert.equal(r.facts.bytes, bigBytes);
    assert.equal(sink.text, HEAD + big.join(''));
  });

  it('normalizes line ends in what it forwards when asked', async () => {
    const sink = new CollectingSink();
    const source = new PassThrough();
    const received = receive(source, new FakeHopTransaction({ data: async () => ({ stream: sink }) }), {
      normalize: true,
    });
    await feed(source, ['a\nb\r', 'c\0\r\n']);
    const r = await received;
    assert.equal(sink.text, `${HEAD}a\r\nb\r\nc\r\n`);
    assert.equal(r.facts.bareLf.count, 1);
    assert.equal(r.forwarded, true);
  });

  it('keeps the refusal of DATA, forwards nothing and still reads the whole client message', async () => {
    const refused = { code: 554, enhanced: '5.7.1', text: 'Not from you' };
    const hop = new FakeHopTransaction({ data: async () => ({ refused }) });
    const source = new PassThrough();
    const received = receive(source, hop);
    await feed(source, big);
    const r = await received;
    assert.deepEqual(r.dataRefusal, refused);
    assert.equal(r.forwarded, false);
    assert.equal(r.streamError, undefined);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, bigBytes);
    assert.equal(source.readableEnded, true);
  });

  it('keeps a DeliveryError of DATA as streamError and still reads the whole client message', async () => {
    const error = new DeliveryError('connection lost', 'queue.nexthop_failed');
    const hop = new FakeHopTransaction({
      data: async () => {
        throw error;
      },
    });
    const source = new PassThrough();
    const received = receive(source, hop);
    await feed(source, big);
    const r = await received;
    assert.equal(r.streamError, error);
    assert.equal(r.forwarded, false);
    assert.equal(r.dataRefusal, undefined);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, bigBytes);
  });

  it('abandons the next hop once at a violation, forwards nothing more and drains the client', async () => {
    const sink = new CollectingSink();
    const hop = new FakeHopTransaction({ data: async () => ({ stream: sink }) });
    const source = new PassThrough();
    const received = receive(source, hop, { violated: (f) => f.bytes > 10 });
    await feed(source, ['12345', '67890', 'abcde', 'fghij', ...big]);
    const r = await received;
    assert.equal(sink.text, `${HEAD}1234567890`);
    assert.equal(hop.aborts, 1);
    assert.equal(r.forwarded, false);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, 20 + bigBytes);
    assert.equal(source.readableEnded, true);
  });

  it('reports an incomplete message and abandons the next hop when the client stream fails', async () => {
    const sink = new CollectingSink();
    const hop = new FakeHopTransaction({ data: async () => ({ stream: sink }) });
    const source = new PassThrough();
    source.on('error', () => undefined); // as the SMTP layer does
    const received = receive(source, hop);
    await feed(source, ['Subject: x\r\n', '\r\npartial'], false);
    source.destroy(new Error('ECONNRESET'));
    const r = await received;
    assert.equal(r.facts.complete, false);
    assert.equal(r.forwarded, false);
    assert.equal(hop.aborts, 1);
    assert.equal(r.facts.bytes, 21);
  });

  it('reports an incomplete message and abandons the next hop when the client stream closes early', async () => {
    const hop = new FakeHopTransaction({ data: async () => ({ stream: new CollectingSink() }) });
    const source = new PassThrough();
    const received = receive(source, hop);
    await feed(source, ['Subject: x\r\n'], false);
    source.destroy();
    const r = await received;
    assert.equal(r.facts.complete, false);
    assert.equal(r.forwarded, false);
    assert.equal(hop.aborts, 1);
  });

  it('turns a sink error into a DeliveryError, abandons the next hop and drains the client', async () => {
    const sink = new CollectingSink(2); // the head is write 1
    const hop = new FakeHopTransaction({ data: async () => ({ stream: sink }) });
    const source = new PassThrough();
    const received = receive(source, hop);
    await feed(source, ['Subject: x\r\n', '\r\nbody\r\n', ...big]);
    const r = await received;
    assert.ok(r.streamError instanceof DeliveryError);
    assert.equal(r.streamError.reasonCode, 'queue.nexthop_failed');
    assert.equal(r.streamError.message, 'connection to the next hop lost');
    assert.equal(r.forwarded, false);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, 20 + bigBytes);
    assert.equal(hop.aborts, 1);
  });

  it("keeps a sink's own DeliveryError", async () => {
    const error = new DeliveryError('ENOSPC', 'queue.spool_failed');
    const sink = new Writable({
      write(_chunk, _enc, done) {
        done(error);
      },
    });
    const source = new PassThrough();
    const received = receive(source, new FakeHopTransaction({ data: async () => ({ stream: sink }) }));
    await feed(source, ['x\r\n']);
    const r = await received;
    assert.equal(r.streamError, error);
    assert.equal(r.forwarded, false);
  });

  it('settles when the client stream closes while the next hop is still opening DATA', {
    todo:
      'bug: receiveMessage() listens for the source\'s "close"/"error" only after `await hop.data()`; ' +
      'a client that went away meanwhile leaves it pending forever',
  }, async () => {
    let open: () => void = () => undefined;
    const opening = new Promise<void>((resolve) => {
      open = resolve;
    });
    const hop = new FakeHopTransaction({
      data: async () => {
        await opening;
        return { stream: new CollectingSink() };
      },
    });
    const source = new PassThrough();
    const received = receive(source, hop);
    source.write('Subject: x\r\n');
    source.destroy();
    await new Promise((resolve) => setTimeout(resolve, 10));
    open();
    const timeout = new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), 50));
    const r = await Promise.race([received, timeout]);
    assert.notEqual(r, 'pending', 'receiveMessage() never settled');
    assert.equal(r !== 'pending' && r.facts.complete, false);
    assert.equal(hop.aborts, 1);
  });
});
