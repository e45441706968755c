import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Outbox, type Pending } from './outbox.js';

const pending = (i: number): Pending => ({
  subject: 'smtpguard.decision.v1.test.rcpt',
  id: `id-${i}`,
  trace: { traceparent: `00-${String(i).padStart(32, '0')}-0000000000000001-01` },
  data: Buffer.from(`decision ${i}`),
});

const path = async () => join(await mkdtemp(join(tmpdir(), 'sg-outbox-')), 'o.jsonl');

/** Publishes everything pending the way the publisher does: next(), then ack(). */
function publishAll(box: Outbox, batch = 2): Pending[] {
  const out: Pending[] = [];
  for (let b = box.next(batch); b.length; b = box.next(batch)) {
    out.push(...b.map((x) => x.pending));
    box.ack((b[b.length - 1] as { end: number }).end, b.length);
  }
  return out;
}

describe('Outbox (write-ahead journal of decisions)', () => {
  it('gives the decisions back in order, byte for byte, and starts over once all are acknowledged', async () => {
    const p = await path();
    const box = new Outbox(p, 1 << 20, 0);
    for (const i of [1, 2, 3]) assert.equal(box.append(pending(i)), true);
    assert.equal(box.size, 3);
    const sent = publishAll(box);
    assert.deepEqual(
      sent.map((x) => [x.id, Buffer.from(x.data).toString(), x.trace.traceparent?.slice(0, 5), x.subject]),
      [1, 2, 3].map((i) => [`id-${i}`, `decision ${i}`, '00-00', 'smtpguard.decision.v1.test.rcpt']),
    );
    assert.equal(box.size, 0);
    assert.equal(readFileSync(p, 'utf8'), '', 'the journal started over');
    box.close();
  });

  it('below startOverBytes keeps the file, and a restart sends nothing that was acknowledged', async () => {
    const p = await path();
    const box = new Outbox(p, 1 << 20, 10_000);
    for (const i of [1, 2, 3]) box.append(pending(i));
    publishAll(box);
    assert.equal(box.size, 0);
    assert.notEqual(readFileSync(p, 'utf8'), '', 'not truncated for every acknowledgement');
    for (let i = 4; i < 200; i++) {
      box.append(pending(i));
      publishAll(box);
    }
    // Each time it passed 10,000 bytes with everything acknowledged, it started over (a line is ~150 bytes).
    const size = readFileSync(p, 'utf8').length;
    assert.ok(size > 0 && size < 10_000, `journal of ${size} bytes`);
    box.append(pending(1000));
    box.close();
    const next = new Outbox(p, 1 << 20, 10_000);
    assert.deepEqual(
      publishAll(next).map((x) => x.id),
      ['id-1000'],
    );
    next.close();
  });

  it('keeps what was not acknowledged: a new process sends it after a stop or a kill', async () => {
    const p = await path();
    const first = new Outbox(p, 1 << 20);
    for (const i of [1, 2, 3, 4]) first.append(pending(i));
    const b = first.next(2);
    first.ack((b[1] as { end: number }).end, 2);
    first.close(); // a kill -9 would leave the same file, with the acknowledged point of up to 200 ms before
    const next = new Outbox(p, 1 << 20);
    assert.equal(next.size, 2);
    assert.deepEqual(
      publishAll(next).map((x) => x.id),
      ['id-3', 'id-4'],
    );
    next.close();
  });

  it('ends a line torn by a crash so the next decision is kept whole', async () => {
    const p = await path();
    const box = new Outbox(p, 1 << 20);
    box.append(pending(1));
    box.close();
    appendFileSync(p, '{"s":"smtpguard.decision.v1.test.rcpt","i":"torn');
    const next = new Outbox(p, 1 << 20);
    next.append(pending(2));
    assert.deepEqual(
      publishAll(next).map((x) => x.id),
      ['id-1', 'id-2'],
      'the torn line is skipped, the others are kept',
    );
    next.close();
  });

  it('is bounded: beyond maxBytes new decisions are dropped and counted, the kept ones stay', async () => {
    const box = new Outbox(await path(), 600);
    const kept = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => box.append(pending(i)));
    const dropped = kept.filter((k) => !k).length;
    assert.ok(dropped > 0 && dropped < 8, `dropped ${dropped}`);
    assert.equal(box.dropped, dropped);
    assert.deepEqual(
      publishAll(box).map((x) => x.id),
      [1, 2, 3, 4, 5, 6, 7, 8].slice(0, 8 - dropped).map((i) => `id-${i}`),
      'the oldest are the ones kept',
    );
    assert.equal(box.append(pending(9)), true, 'room again once published');
    box.close();
  });
});
