import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Outbox, type Pending } from './outbox.js';

const pending = (i: number): Pending => ({
  subject: `smtpguard.decision.v1.test.rcpt`,
  id: `id-${i}`,
  trace: { traceparent: `00-${String(i).padStart(32, '0')}-0000000000000001-01` },
  data: Buffer.from(`decision ${i}`),
});

async function dir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sg-outbox-'));
}

describe('Outbox', () => {
  it('keeps decisions in order and sends them in order, byte for byte', async () => {
    const box = new Outbox(join(await dir(), 'o.jsonl'), 1 << 20);
    await box.append([pending(1), pending(2)]);
    await box.append([pending(3)]);
    assert.equal(box.size, 3);
    const sent: Pending[] = [];
    assert.equal(
      await box.drain(async (p) => {
        sent.push(p);
      }),
      3,
    );
    assert.deepEqual(
      sent.map((p) => [p.id, Buffer.from(p.data).toString(), p.trace.traceparent?.slice(0, 5), p.subject]),
      [1, 2, 3].map((i) => [`id-${i}`, `decision ${i}`, '00-00', 'smtpguard.decision.v1.test.rcpt']),
    );
    assert.equal(box.size, 0);
  });

  it('stops at the first failure and keeps that one and the rest for the next drain', async () => {
    const box = new Outbox(join(await dir(), 'o.jsonl'), 1 << 20);
    await box.append([1, 2, 3, 4].map(pending));
    let n = 0;
    const sent = await box.drain(async () => {
      n += 1;
      if (n === 3) throw new Error('NATS went away');
    });
    assert.equal(sent, 2);
    assert.equal(box.size, 2);
    const rest: string[] = [];
    await box.drain(async (p) => {
      rest.push(p.id);
    });
    assert.deepEqual(rest, ['id-3', 'id-4']);
  });

  it('survives the process: a new outbox on the same file sends what the old one kept', async () => {
    const path = join(await dir(), 'o.jsonl');
    await new Outbox(path, 1 << 20).append([pending(7), pending(8)]);
    const next = new Outbox(path, 1 << 20);
    const ids: string[] = [];
    await next.drain(async (p) => {
      ids.push(p.id);
    });
    assert.deepEqual(ids, ['id-7', 'id-8']);
  });

  it('is bounded: beyond maxBytes new decisions are dropped and counted, the kept ones stay', async () => {
    const path = join(await dir(), 'o.jsonl');
    const box = new Outbox(path, 400);
    const dropped = await box.append([1, 2, 3, 4, 5, 6, 7, 8].map(pending));
    assert.ok(dropped > 0 && dropped < 8, `dropped ${dropped}`);
    assert.equal(box.dropped, dropped);
    assert.equal(box.size, 8 - dropped);
    assert.ok((await readFile(path)).length <= 400);
    const ids: string[] = [];
    await box.drain(async (p) => {
      ids.push(p.id);
    });
    assert.deepEqual(
      ids,
      [1, 2, 3, 4, 5, 6, 7, 8].slice(0, 8 - dropped).map((i) => `id-${i}`),
      'the oldest are the ones kept',
    );
  });
});
