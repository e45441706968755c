import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliveryError, type HopReply } from '../../delivery/next-hop.js';
import type { PhaseInputs } from '../../engine/check.js';
import { checkContext, FakeHopTransaction, newSession, only, runPhase } from '../../fakes.test.js';
import { delivery } from './delivery.js';

const NEXT_HOP = 'smtp://10.0.0.5:25';

function queue(o: { hop?: FakeHopTransaction; input?: Partial<PhaseInputs['queue']> } = {}) {
  const session = newSession();
  const tx = session.beginTransaction('alice@example.org', {});
  tx.recipients.push('bob@example.test', 'carol@example.test');
  tx.hop = o.hop;
  const ctx = checkContext('queue', { input: { nextHop: NEXT_HOP, ...o.input }, session });
  return { ctx, tx, scope: { messageId: tx.messageId } };
}

const committing = (reply: HopReply | (() => never)) =>
  new FakeHopTransaction({ commit: typeof reply === 'function' ? reply : () => reply });

describe('delivery', () => {
  it("records queue.accepted when the next hop's commit answers 2xx", async () => {
    const hop = committing({ code: 250, enhanced: '2.0.0', text: 'Ok: queued as 4Xyz' });
    const { ctx, scope } = queue({ hop });
    const r = await runPhase('queue', [delivery], ctx, scope);
    assert.equal(r.refusal, undefined);
    assert.equal(hop.commits, 1);
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

  it("passes a 4xx answer on as queue.nexthop_deferred with the next hop's codes and text", async () => {
    const { ctx, scope } = queue({
      hop: committing({ code: 452, enhanced: '4.3.1', text: 'Insufficient storage' }),
    });
    const r = await runPhase('queue', [delivery], ctx, scope);
    assert.deepEqual(r.refusal?.reply, { code: 452, enhanced: '4.3.1', text: 'Insufficient storage' });
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
    assert.deepEqual(r.refusal?.reply, { code: 451, enhanced: '4.0.0', text: 'Try again later' });
  });

  it("passes a 5xx answer on as queue.nexthop_rejected with the next hop's codes and text", async () => {
    const { ctx } = queue({ hop: committing({ code: 552, enhanced: '5.3.4', text: 'Message too big' }) });
    const r = await runPhase('queue', [delivery], ctx);
    assert.deepEqual(r.refusal?.reply, { code: 552, enhanced: '5.3.4', text: 'Message too big' });
    assert.equal(r.refusal?.reason, 'queue.nexthop_rejected');
    assert.equal(only(r.records).outcome, 'fail');
  });

  it('uses the catalog reply 554 5.0.0 with the text of a next hop that sent 554 without enhanced code', async () => {
    const { ctx } = queue({ hop: committing({ code: 554, enhanced: '', text: 'Transaction failed' }) });
    const r = await runPhase('queue', [delivery], ctx);
    assert.deepEqual(r.refusal?.reply, { code: 554, enhanced: '5.0.0', text: 'Transaction failed' });
  });

  it('asks the client to retry 451 4.4.1 when the commit is lost (DeliveryError)', async () => {
    const hop = committing(() => {
      throw new DeliveryError('timeout waiting for the final reply', 'queue.nexthop_failed');
    });
    const { ctx, scope } = queue({ hop });
    const r = await runPhase('queue', [delivery], ctx, scope);
    assert.deepEqual(r.refusal?.reply, {
      code: 451,
      enhanced: '4.4.1',
      text: 'Message not accepted: the next hop is unavailable, please try again later',
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

  it("uses the DeliveryError's reason: a spool failure is 451 4.3.0", async () => {
    const hop = committing(() => {
      throw new DeliveryError('ENOSPC', 'queue.spool_failed');
    });
    const r = await runPhase('queue', [delivery], queue({ hop }).ctx);
    assert.equal(r.refusal?.reason, 'queue.spool_failed');
    assert.deepEqual(r.refusal?.reply, {
      code: 451,
      enhanced: '4.3.0',
      text: 'Your message was received but could not be saved, please retry later',
    });
  });

  it('lets other errors of the commit propagate', async () => {
    const hop = committing(() => {
      throw new TypeError('bug');
    });
    await assert.rejects(runPhase('queue', [delivery], queue({ hop }).ctx), TypeError);
  });

  it("passes the next hop's refusal of DATA on without committing", async () => {
    const hop = new FakeHopTransaction();
    const dataRefusal = { code: 554, enhanced: '5.7.1', text: 'No thanks' };
    const r = await runPhase('queue', [delivery], queue({ hop, input: { dataRefusal } }).ctx);
    assert.deepEqual(r.refusal?.reply, { code: 554, enhanced: '5.7.1', text: 'No thanks' });
    assert.equal(r.refusal?.reason, 'queue.nexthop_rejected');
    assert.equal(hop.commits, 0);
  });

  it('defers a DATA refusal that was temporary', async () => {
    const hop = new FakeHopTransaction();
    const dataRefusal = { code: 451, enhanced: '4.3.0', text: 'Local error' };
    const r = await runPhase('queue', [delivery], queue({ hop, input: { dataRefusal } }).ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_deferred');
    assert.equal(r.refusal?.reply.code, 451);
    assert.equal(hop.commits, 0);
  });

  it('refuses with the reason of a stream error without committing', async () => {
    const hop = new FakeHopTransaction();
    const streamError = new DeliveryError('connection reset', 'queue.nexthop_failed');
    const r = await runPhase('queue', [delivery], queue({ hop, input: { streamError } }).ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_failed');
    assert.equal(r.refusal?.reply.code, 451);
    assert.equal(only(r.records).attributes?.error, 'connection reset');
    assert.equal(hop.commits, 0);
  });

  it('fails with queue.nexthop_failed when there is no next hop transaction', async () => {
    const r = await runPhase('queue', [delivery], queue().ctx);
    assert.equal(r.refusal?.reason, 'queue.nexthop_failed');
    assert.equal(only(r.records).attributes?.error, 'no next hop transaction');
  });
});
