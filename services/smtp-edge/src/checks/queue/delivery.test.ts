import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { DeliveryError, type HopReply } from '../../delivery/next-hop.js';
import type { MessageBody, PhaseInputs } from '../../engine/check.js';
import {
  CollectingSink,
  checkContext,
  FakeHopTransaction,
  newSession,
  only,
  runPhase,
} from '../../fakes.test.js';
import { delivery } from './delivery.js';

const NEXT_HOP = 'smtp://10.0.0.5:25';
const HEAD =
  'Received: from client.example.org by mx.example.test\r\n' +
  'X-Greylist: delayed 300 seconds by smtpguard at mx.example.test\r\n';
const BODY = ['Subject: hi\r\n', '\r\n', 'Hello\r\n'];

/** A message body whose reader() calls are counted. */
function body(chunks: Array<string | Buffer> = BODY): MessageBody & { readers: number } {
  const bufs = chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'latin1') : c));
  const m = {
    readers: 0,
    size: bufs.reduce((n, b) => n + b.length, 0),
    reader: () => {
      m.readers += 1;
      return Readable.from(bufs);
    },
  };
  return m;
}

function queue(
  o: { hop?: FakeHopTransaction; headers?: string[]; input?: Partial<PhaseInputs['queue']> } = {},
) {
  const session = newSession();
  const tx = session.beginTransaction('alice@example.org', {});
  tx.recipients.push('bob@example.test', 'carol@example.test');
  tx.headers.push(...(o.headers ?? []));
  tx.hop = o.hop;
  const input = { nextHop: NEXT_HOP, head: HEAD, message: body(), ...o.input };
  const ctx = checkContext('queue', { input, session });
  return { ctx, tx, scope: { messageId: tx.messageId } };
}

/** A next hop whose DATA goes to `sink` and whose commit answers `reply` (or throws). */
function committing(reply: HopReply | (() => never), sink: Writable = new CollectingSink()) {
  return new FakeHopTransaction({
    data: async () => ({ stream: sink }),
    commit: typeof reply === 'function' ? reply : () => reply,
  });
}

const refusingData = (refused: HopReply) => new FakeHopTransaction({ data: async () => ({ refused }) });

describe('delivery', { timeout: 5000 }, () => {
  it('writes the check headers, the trace headers and the message, then commits: 2xx is queue.accepted', async () => {
    const sink = new CollectingSink();
    let finishedAtCommit: boolean | undefined;
    const hop = new FakeHopTransaction({
      data: async () => ({ stream: sink }),
      commit: () => {
        finishedAtCommit = sink.writableFinished;
        return { code: 250, enhanced: '2.0.0', text: 'Ok: queued as 4Xyz' };
      },
    });
    const headers = ['Authentication-Results: mx.example.test; spf=pass', 'X-Check: one'];
    const { ctx, scope } = queue({ hop, headers });
    const r = await runPhase('queue', [delivery], ctx, scope);
    assert.equal(r.refusal, undefined);
    assert.equal(
      sink.text,
      `Authentication-Results: mx.example.test; spf=pass\r\nX-Check: one\r\n${HEAD}${BODY.join('')}`,
    );
    assert.equal(hop.dataCalls, 1);
    assert.equal(hop.commits, 1);
    assert.equal(finishedAtCommit, true, 'commit() before the stream to the next hop was ended');
    assert.equal(hop.aborts, 0);
    assert.equal(r.verdicts[0]?.reason, 'queue.accepted');
    const d = only(r.records);
    assert.equal(d.outcome, 'pass');
    assert.equal(d.reasonCode, 'queue.accepted');
    assert.equal(d.messageId, scope.messageId);
    assert.deepEqual(d.attributes, { next_hop: NEXT_HOP, hop_reply: '250 2.0.0 Ok: queued as 4Xyz' });
    assert.equal(
      d.detail,
      `Message ${scope.messageId} from <alice@example.org> for bob@example.test, carol@example.test was handed ` +
        `to ${NEXT_HOP}: Ok: queued as 4Xyz.`,
    );
  });

  it('writes only the trace headers above the message when no check added header fields', async () => {
    const sink = new CollectingSink();
    const { ctx } = queue({ hop: committing({ code: 250, enhanced: '', text: 'OK' }, sink) });
    const r = await runPhase('queue', [delivery], ctx);
    assert.equal(r.refusal, undefined);
    assert.equal(sink.text, HEAD + BODY.join(''));
  });

  it('streams a message larger than the stream buffers whole, through a slow next hop', async () => {
    const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(4096, 65 + (i % 26)));
    const got: Buffer[] = [];
    const sink = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, done) {
        got.push(chunk);
        setImmediate(done);
      },
    });
    const hop = committing({ code: 250, enhanced: '2.0.0', text: 'OK' }, sink);
    const { ctx } = queue({ hop, input: { message: body(chunks) } });
    const r = await runPhase('queue', [delivery], ctx);
    assert.equal(r.refusal, undefined);
    assert.deepEqual(Buffer.concat(got), Buffer.concat([Buffer.from(HEAD), ...chunks]));
    assert.equal(hop.commits, 1);
  });

  it("passes a 4xx answer on as queue.nexthop_deferred with the next hop's codes and text", async () => {
    const { ctx, scope } = queue({
      hop: committing({ code: 452, enhanced: '4.3.1', text: 'Insufficient storage' }),
    });
    const r = await runPhase('queue', [delivery], ctx, scope);
    assert.deepEqual(r.refusal?.reply, {
      code: 452,
      enhanced: '4.3.1',
      text: 'Insufficient storage (ref s1)',
    });
    assert.equal(r.refusal?.reason, 'queue.nexthop_deferred');
    const d = only(r.records);
    assert.equal(d.outcome, 'defer');
    assert.equal(
      d.detail,
      `${NEXT_HOP} deferred message ${scope.messageId}: 452 4.3.1 Insufficient storage.`,
    );
  });

  it('uses the catalog enhanced code 4.0.0 when a deferring next hop sent none', async () => {
    const { ctx } = queue({ hop: committing({ code: 451, enhanced: '', text: 'Try again later' }) });
    const r = await runPhase('queue', [delivery], ctx);
    assert.deepEqual(r.refusal?.reply, { code: 451, enhanced: '4.0.0', text: 'Try again later (ref s1)' });
  });

  it("passes a 5xx answer on as queue.nexthop_rejected with the next hop's codes and text", async () => {
    const { ctx } = queue({ hop: committing({ code: 552, enhanced: '5.3.4', text: 'Message too big' }) });
    const r = await runPhase('queue', [delivery], ctx);
    assert.deepEqual(r.refusal?.reply, { code: 552, enhanced: '5.3.4', text: 'Message too big (ref s1)' });
    assert.equal(r.refusal?.reason, 'queue.nexthop_rejected');
    assert.equal(only(r.records).outcome, 'fail');
  });

  it('passes a commit answered 550 5.1.1 on as queue.nexthop_rejected with its codes', async () => {
    const hop = committing({ code: 550, enhanced: '5.1.1', text: 'User unknown' });
    const { ctx } = queue({ hop });
    const r = await runPhase('queue', [delivery], ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_rejected');
    assert.deepEqual(r.refusal?.reply, { code: 550, enhanced: '5.1.1', text: 'User unknown (ref s1)' });
    const d = only(r.records);
    assert.equal(d.outcome, 'fail');
    assert.deepEqual(d.attributes, { next_hop: NEXT_HOP, hop_reply: '550 5.1.1 User unknown' });
    assert.equal(hop.commits, 1);
  });

  it('uses the catalog reply 554 5.0.0 with the text of a next hop that sent 554 without enhanced code', async () => {
    const { ctx } = queue({ hop: committing({ code: 554, enhanced: '', text: 'Transaction failed' }) });
    const r = await runPhase('queue', [delivery], ctx);
    assert.deepEqual(r.refusal?.reply, { code: 554, enhanced: '5.0.0', text: 'Transaction failed (ref s1)' });
  });

  it('asks the client to retry 451 4.4.1 when the commit is lost (DeliveryError)', async () => {
    const hop = committing(() => {
      throw new DeliveryError('timeout waiting for the final reply', 'queue.nexthop_failed');
    });
    const { ctx, scope } = queue({ hop });
    const r = await runPhase('queue', [delivery], ctx, scope);
    assert.equal(r.refusal?.reason, 'queue.nexthop_failed');
    assert.deepEqual(r.refusal?.reply, {
      code: 451,
      enhanced: '4.4.1',
      text: 'Message not accepted: the next hop is unavailable, please try again later (ref s1)',
    });
    const d = only(r.records);
    assert.equal(d.outcome, 'error');
    assert.equal(d.reasonCode, 'queue.nexthop_failed');
    assert.deepEqual(d.attributes, { next_hop: NEXT_HOP, error: 'timeout waiting for the final reply' });
    assert.equal(
      d.detail,
      `Handing message ${scope.messageId} to ${NEXT_HOP} failed: timeout waiting for the final reply.`,
    );
  });

  it('asks the client to retry 451 4.4.1 when the commit rejects with a bare DeliveryError', async () => {
    const hop = new FakeHopTransaction({
      data: async () => ({ stream: new CollectingSink() }),
      commit: () => Promise.reject(new DeliveryError('x', 'queue.nexthop_failed')),
    });
    const r = await runPhase('queue', [delivery], queue({ hop }).ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_failed');
    assert.equal(r.refusal?.reply.code, 451);
    assert.equal(r.refusal?.reply.enhanced, '4.4.1');
    assert.equal(only(r.records).attributes?.error, 'x');
  });

  it("uses the DeliveryError's reason: a spool failure is 451 4.3.0", async () => {
    const hop = committing(() => {
      throw new DeliveryError('ENOSPC', 'queue.spool_failed');
    });
    const r = await runPhase('queue', [delivery], queue({ hop }).ctx);
    assert.equal(r.refusal?.reason, 'queue.spool_failed');
    assert.deepEqual(r.refusal?.reply, {
      code: 451,
      enhanced: '4.3.0',
      text: 'Your message was received but could not be saved, please retry later (ref s1)',
    });
  });

  it('lets other errors of the commit propagate', async () => {
    const hop = committing(() => {
      throw new TypeError('bug');
    });
    await assert.rejects(runPhase('queue', [delivery], queue({ hop }).ctx), TypeError);
  });

  it("passes the next hop's refusal of DATA (554 5.7.1) on without sending or committing", async () => {
    const hop = refusingData({ code: 554, enhanced: '5.7.1', text: 'No thanks' });
    const message = body();
    const r = await runPhase('queue', [delivery], queue({ hop, input: { message } }).ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_rejected');
    assert.deepEqual(r.refusal?.reply, { code: 554, enhanced: '5.7.1', text: 'No thanks (ref s1)' });
    const d = only(r.records);
    assert.equal(d.outcome, 'fail');
    assert.deepEqual(d.attributes, { next_hop: NEXT_HOP, hop_reply: '554 5.7.1 No thanks' });
    assert.equal(hop.dataCalls, 1);
    assert.equal(hop.commits, 0);
    assert.equal(message.readers, 0);
  });

  it('defers a DATA refusal that was temporary (451) as queue.nexthop_deferred', async () => {
    const hop = refusingData({ code: 451, enhanced: '4.3.0', text: 'Local error' });
    const r = await runPhase('queue', [delivery], queue({ hop }).ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_deferred');
    assert.deepEqual(r.refusal?.reply, { code: 451, enhanced: '4.3.0', text: 'Local error (ref s1)' });
    assert.equal(only(r.records).outcome, 'defer');
    assert.equal(hop.commits, 0);
  });

  it('asks the client to retry 451 4.4.1 when DATA at the next hop fails (DeliveryError)', async () => {
    const hop = new FakeHopTransaction({
      data: () => Promise.reject(new DeliveryError('connection reset', 'queue.nexthop_failed')),
    });
    const r = await runPhase('queue', [delivery], queue({ hop }).ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_failed');
    assert.equal(r.refusal?.reply.code, 451);
    assert.equal(only(r.records).attributes?.error, 'connection reset');
    assert.equal(hop.commits, 0);
  });

  it('refuses 451 4.3.0 queue.spool_failed when keeping the message failed, without the next hop', async () => {
    const hop = committing({ code: 250, enhanced: '2.0.0', text: 'OK' });
    const message = body();
    const { ctx, scope } = queue({ hop, input: { message, bufferError: new Error('ENOSPC') } });
    const r = await runPhase('queue', [delivery], ctx, scope);
    assert.equal(r.refusal?.reason, 'queue.spool_failed');
    assert.deepEqual(r.refusal?.reply, {
      code: 451,
      enhanced: '4.3.0',
      text: 'Your message was received but could not be saved, please retry later (ref s1)',
    });
    const d = only(r.records);
    assert.equal(d.outcome, 'error');
    assert.deepEqual(d.attributes, { next_hop: NEXT_HOP, error: 'keeping the message failed: ENOSPC' });
    assert.equal(hop.dataCalls, 0);
    assert.equal(hop.commits, 0);
    assert.equal(message.readers, 0);
  });

  it('fails with queue.nexthop_failed and does not commit when the message cannot be read to the end', async () => {
    const sink = new CollectingSink();
    const hop = committing({ code: 250, enhanced: '2.0.0', text: 'OK' }, sink);
    const message: MessageBody = {
      size: 100,
      reader: () =>
        Readable.from(
          (async function* () {
            yield Buffer.from('Subject: hi\r\n');
            throw new Error('EIO');
          })(),
        ),
    };
    const r = await runPhase('queue', [delivery], queue({ hop, input: { message } }).ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_failed');
    assert.equal(r.refusal?.reply.code, 451);
    assert.equal(r.refusal?.reply.enhanced, '4.4.1');
    assert.equal(only(r.records).attributes?.error, 'sending the message failed: EIO');
    assert.equal(hop.commits, 0);
    assert.equal(sink.writableFinished, false, 'the stream to the next hop was ended as if whole');
    assert.equal(sink.destroyed, true);
  });

  it('fails with queue.nexthop_failed and does not commit when the stream to the next hop fails', async () => {
    const hop = committing({ code: 250, enhanced: '2.0.0', text: 'OK' }, new CollectingSink(2));
    const r = await runPhase('queue', [delivery], queue({ hop }).ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_failed');
    assert.equal(
      only(r.records).attributes?.error,
      'sending the message failed: connection to the next hop lost',
    );
    assert.equal(hop.commits, 0);
  });

  it('fails with queue.nexthop_failed when there is no next hop transaction', async () => {
    const message = body();
    const r = await runPhase('queue', [delivery], queue({ input: { message } }).ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_failed');
    assert.equal(r.refusal?.reply.code, 451);
    assert.equal(only(r.records).attributes?.error, 'no next hop transaction');
    assert.equal(message.readers, 0);
  });
});
