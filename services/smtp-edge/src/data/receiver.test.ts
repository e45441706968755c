import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { CollectingSink } from '../fakes.test.js';
import type { DataFacts } from './inspector.js';
import { MessageBuffer } from './message-buffer.js';
import { type Received, receiveMessage } from './receiver.js';

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
  source: Readable,
  sink: Writable,
  o: { normalize?: boolean; violated?: (facts: DataFacts) => boolean } = {},
): Promise<Received> {
  return receiveMessage(source, {
    sink,
    normalize: o.normalize ?? false,
    violated: o.violated ?? (() => false),
  });
}

/** Tracks whether a promise settled, to show that it has not yet. */
function watch<T>(p: Promise<T>): { readonly settled: boolean } {
  const state = { settled: false };
  p.then(
    () => {
      state.settled = true;
    },
    () => {
      state.settled = true;
    },
  );
  return state;
}

/** The promise's value, or 'pending' when it did not settle within `ms` (a hang fails fast, not at 5 s). */
function within<T>(p: Promise<T>, ms = 50): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A message larger than the stream buffers, so it is only complete when it was really read. */
const big = Array.from({ length: 40 }, (_, i) => `${String(i).padStart(4, '0')}${'x'.repeat(4090)}\r\n`);
const bigBytes = big.reduce((n, c) => n + c.length, 0);

describe('receiveMessage', { timeout: 5000 }, () => {
  it('keeps the whole message in the sink, counts it and waits until the sink finished', async () => {
    const sink = new CollectingSink();
    const source = new PassThrough();
    const received = receive(source, sink);
    await feed(source, ['Subject: hi\r\n', 'Received: x\r\n', '\r\nHello\r\n']);
    const r = await received;
    assert.equal(sink.text, 'Subject: hi\r\nReceived: x\r\n\r\nHello\r\n');
    assert.equal(sink.writableFinished, true);
    assert.equal(r.kept, true);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, 35);
    assert.equal(r.facts.receivedHeaders, 1);
    assert.equal(r.facts.longestLine, 13);
    assert.equal(r.facts.bareLf.count, 0);
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
    const received = receive(source, sink);
    await feed(source, ['x\r\n']);
    const r = await received;
    assert.equal(finished, true);
    assert.equal(r.kept, true);
  });

  it('keeps a large message whole and in order through a slow sink (backpressure)', async () => {
    const chunks: Buffer[] = [];
    const sink = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk);
        setImmediate(done);
      },
    });
    const source = new PassThrough();
    const received = receive(source, sink);
    await feed(source, big);
    const r = await received;
    assert.equal(r.kept, true);
    assert.equal(r.facts.bytes, bigBytes);
    assert.equal(Buffer.concat(chunks).toString('latin1'), big.join(''));
  });

  it('keeps a large message in a real MessageBuffer that spills to a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smtpguard-receiver-'));
    const buf = new MessageBuffer(dir, 10_000);
    try {
      const source = new PassThrough();
      const received = receive(source, buf);
      await feed(source, big);
      const r = await received;
      assert.equal(r.kept, true);
      assert.equal(buf.spilled, true);
      assert.equal(buf.size, bigBytes);
      const back: Buffer[] = [];
      for await (const chunk of buf.reader()) back.push(chunk as Buffer);
      assert.equal(Buffer.concat(back).toString('latin1'), big.join(''));
    } finally {
      await buf.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('passes normalized bytes to the sink in normalize mode and counts what the client sent', async () => {
    const sink = new CollectingSink();
    const source = new PassThrough();
    const received = receive(source, sink, { normalize: true });
    await feed(source, ['a\nb\r', 'c\0\r\n']);
    const r = await received;
    assert.equal(sink.text, 'a\r\nb\r\nc\r\n');
    assert.equal(r.facts.bytes, 8);
    assert.equal(r.facts.bareLf.count, 1);
    assert.equal(r.facts.bareCr.count, 1);
    assert.equal(r.facts.nul.count, 1);
    assert.equal(r.kept, true);
  });

  it('passes the bytes unchanged without normalize', async () => {
    const sink = new CollectingSink();
    const source = new PassThrough();
    const received = receive(source, sink);
    await feed(source, ['a\nb\r', 'c\0\r\n']);
    const r = await received;
    assert.equal(sink.text, 'a\nb\rc\0\r\n');
    assert.equal(r.kept, true);
  });

  it('keeps nothing from the violating chunk on, drains the client and reports complete but not kept', async () => {
    const sink = new CollectingSink();
    const seen: number[] = [];
    const source = new PassThrough();
    const received = receive(source, sink, {
      violated: (f) => {
        seen.push(f.bytes);
        return f.bytes > 10;
      },
    });
    await feed(source, ['12345', '67890', 'abcde', 'fghij', ...big]);
    const r = await received;
    assert.equal(sink.text, '1234567890');
    assert.equal(sink.writableEnded, false, 'the sink must not be ended as if the message were whole');
    assert.equal(r.kept, false);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, 20 + bigBytes);
    assert.equal(source.readableEnded, true);
    // Once violated, the checks are not asked again.
    assert.deepEqual(seen, [5, 10, 15]);
  });

  it('stops keeping at a violation also when the sink applies backpressure', async () => {
    const chunks: Buffer[] = [];
    const sink = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk);
        setImmediate(done);
      },
    });
    const source = new PassThrough();
    const received = receive(source, sink, { violated: (f) => f.bytes > 8 * 4096 });
    await feed(source, big);
    const r = await received;
    assert.equal(r.kept, false);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, bigBytes);
    const kept = Buffer.concat(chunks).toString('latin1');
    assert.ok(kept.length <= 8 * 4096, `kept ${kept.length} octets`);
    assert.ok(big.join('').startsWith(kept));
  });

  it('reports an incomplete message, not kept, when the client stream fails', async () => {
    const sink = new CollectingSink();
    const source = new PassThrough();
    source.on('error', () => undefined); // as the SMTP layer does
    const received = receive(source, sink);
    await feed(source, ['Subject: x\r\n', '\r\npartial'], false);
    source.destroy(new Error('ECONNRESET'));
    const r = await within(received);
    assert.notEqual(r, 'pending', 'receiveMessage() never settled');
    if (r === 'pending') return;
    assert.equal(r.facts.complete, false);
    assert.equal(r.kept, false);
    assert.equal(r.facts.bytes, 21);
    assert.equal(sink.writableEnded, false, 'the sink must not be ended as if the message were whole');
  });

  it('reports an incomplete message, not kept, when the client stream closes early', async () => {
    const sink = new CollectingSink();
    const source = new PassThrough();
    const received = receive(source, sink);
    await feed(source, ['Subject: x\r\n'], false);
    source.destroy();
    const r = await within(received);
    assert.notEqual(r, 'pending', 'receiveMessage() never settled');
    if (r === 'pending') return;
    assert.equal(r.facts.complete, false);
    assert.equal(r.kept, false);
    assert.equal(sink.writableEnded, false);
  });

  it('reports an incomplete message when the client goes away while the sink applies backpressure', async () => {
    const sink = new Writable({
      highWaterMark: 16,
      write(_chunk, _enc, _done) {
        // never done: the sink is stuck
      },
    });
    const source = new PassThrough();
    source.on('error', () => undefined);
    const received = receive(source, sink);
    await feed(source, big.slice(0, 10), false);
    source.destroy(new Error('ECONNRESET'));
    const r = await within(received);
    assert.notEqual(r, 'pending', 'receiveMessage() never settled');
    if (r === 'pending') return;
    assert.equal(r.facts.complete, false);
    assert.equal(r.kept, false);
  });

  it('reports an incomplete message at once when the client stream was destroyed before', async () => {
    const sink = new CollectingSink();
    const source = new PassThrough();
    source.destroy();
    const r = await within(receive(source, sink));
    assert.notEqual(r, 'pending', 'receiveMessage() never settled');
    if (r === 'pending') return;
    assert.equal(r.facts.complete, false);
    assert.equal(r.kept, false);
    assert.equal(r.facts.bytes, 0);
    assert.equal(sink.text, '');
  });

  it('reports an incomplete message when the client stream already failed and closed before', async () => {
    const sink = new CollectingSink();
    const source = new PassThrough();
    source.on('error', () => undefined);
    source.destroy(new Error('ECONNRESET'));
    await new Promise((resolve) => source.once('close', resolve));
    assert.equal(source.destroyed, true);
    const r = await within(receive(source, sink));
    assert.notEqual(r, 'pending', 'receiveMessage() never settled');
    if (r === 'pending') return;
    assert.equal(r.facts.complete, false);
    assert.equal(r.kept, false);
  });

  it('keeps reading the client after the sink failed, and resolves not kept once it ended', async () => {
    const sink = new CollectingSink(2);
    const source = new PassThrough();
    const received = receive(source, sink);
    const state = watch(received);
    await feed(source, ['Subject: x\r\n', '\r\nbody\r\n', ...big], false);
    assert.equal(sink.errored instanceof Error, true);
    assert.equal(state.settled, false, 'resolved before the client ended the message');
    source.end();
    const r = await received;
    assert.equal(r.kept, false);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, 20 + bigBytes);
    assert.equal(source.readableEnded, true);
    assert.equal(sink.text, 'Subject: x\r\n');
  });

  it('reports not kept and still drains the client when the sink is closed early without an error', async () => {
    let writes = 0;
    const sink = new Writable({
      write(_chunk, _enc, done) {
        writes += 1;
        if (writes === 2) this.destroy();
        done();
      },
    });
    const source = new PassThrough();
    const received = receive(source, sink);
    await feed(source, ['Subject: x\r\n', '\r\nbody\r\n', ...big]);
    const r = await within(received);
    assert.notEqual(r, 'pending', 'receiveMessage() never settled');
    if (r === 'pending') return;
    assert.equal(r.kept, false);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, 20 + bigBytes);
  });

  it('reports not kept when the sink fails while finishing', async () => {
    const sink = new Writable({
      write(_chunk, _enc, done) {
        done();
      },
      final(done) {
        done(new Error('ENOSPC'));
      },
    });
    const source = new PassThrough();
    const received = receive(source, sink);
    await feed(source, ['x\r\n']);
    const r = await received;
    assert.equal(r.kept, false);
    assert.equal(r.facts.complete, true);
  });

  it('reports not kept when the sink fails at its first write', async () => {
    const sink = new Writable({
      write(_chunk, _enc, done) {
        done(new Error('ENOSPC'));
      },
    });
    const source = new PassThrough();
    const received = receive(source, sink);
    await feed(source, ['x\r\n', 'y\r\n']);
    const r = await received;
    assert.equal(r.kept, false);
    assert.equal(r.facts.complete, true);
    assert.equal(r.facts.bytes, 6);
  });
});

describe('receiveMessage into a MessageBuffer that cannot write its file', { timeout: 5000 }, () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtpguard-receiver-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports not kept and still drains the client', async () => {
    const buf = new MessageBuffer(join(dir, 'missing'), 1000);
    let bufferError: Error | undefined;
    buf.once('error', (err) => {
      bufferError = err;
    });
    try {
      const source = new PassThrough();
      const received = receive(source, buf);
      await feed(source, big);
      const r = await received;
      assert.equal(r.kept, false);
      assert.equal(r.facts.complete, true);
      assert.equal(r.facts.bytes, bigBytes);
      assert.match(String(bufferError), /ENOENT/);
    } finally {
      await buf.dispose();
    }
    assert.deepEqual(await readdir(dir), []);
  });
});
