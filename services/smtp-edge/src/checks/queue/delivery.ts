import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { formatReply, type Vars } from '@smtpguard/reasons';
import { DeliveryError, type HopReply } from '../../delivery/next-hop.js';
import { withoutOwnAuthResults } from '../../delivery/own-auth-results.js';
import { defineCheck, type Verdict } from '../../engine/check.js';

type Reasons = 'queue.accepted' | 'queue.nexthop_deferred' | 'queue.nexthop_rejected';

/** The next hop's own answer passed on: 2xx accepted, 4xx deferred, 5xx refused. */
function answer(reply: HopReply, vars: Vars, next_hop: string): Verdict<Reasons> {
  const hop_reply = formatReply(reply);
  const v = { ...vars, hop_text: reply.text, hop_reply };
  const attributes = { next_hop, hop_reply };
  if (reply.code < 300) return { outcome: 'pass', reason: 'queue.accepted', vars: v, attributes };
  const override = { code: reply.code, enhanced: reply.enhanced };
  return reply.code >= 500
    ? {
        outcome: 'fail',
        reason: 'queue.nexthop_rejected',
        vars: v,
        attributes,
        refuse: true,
        replyOverride: override,
      }
    : {
        outcome: 'defer',
        reason: 'queue.nexthop_deferred',
        vars: v,
        attributes,
        refuse: true,
        replyOverride: override,
      };
}

/**
 * The hand-off, once every DATA check passed: DATA at the next hop (its transaction has waited since the first
 * recipient), the checks' header fields and the trace headers, the message as received (less any
 * Authentication-Results field the client sent in this host's name, RFC 8601 5), the final dot (or the
 * spool file synced and renamed), and the next hop's answer passed on: the client's 250 is the next hop's 250.
 * A next hop that cannot be reached or loses the connection gets the client a 451: nothing was kept, the
 * client retries.
 */
export const delivery = defineCheck({
  name: 'delivery',
  phase: 'queue',
  reasons: [
    'queue.accepted',
    'queue.nexthop_deferred',
    'queue.nexthop_rejected',
    'queue.nexthop_failed',
    'queue.spool_failed',
  ],
  settings: ['edge.nextHop'],
  async run(ctx) {
    const { nextHop: next_hop, head, message, bufferError } = ctx.input;
    const vars = { recipients: ctx.tx.recipients.join(', '), next_hop };
    const failed = (err: DeliveryError): Verdict<typeof err.reasonCode> => ({
      outcome: 'error',
      reason: err.reasonCode,
      vars: { ...vars, error: err.message },
      attributes: { next_hop, error: err.message },
      refuse: true,
    });
    if (bufferError)
      return failed(
        new DeliveryError(`keeping the message failed: ${bufferError.message}`, 'queue.spool_failed'),
      );
    const hop = ctx.tx.hop;
    if (!hop) return failed(new DeliveryError('no next hop transaction', 'queue.nexthop_failed'));
    try {
      const opened = await hop.data();
      if ('refused' in opened) return answer(opened.refused, vars, next_hop);
      const fields = ctx.tx.headers.map((h) => `${h}\r\n`).join('');
      try {
        const own = ctx.cfg.edge.hostname;
        await pumpTo(
          opened.stream,
          (async function* () {
            yield Buffer.from(fields + head);
            // RFC 8601 5: Authentication-Results fields in this host's name that the client sent are forged.
            yield* withoutOwnAuthResults(message.reader(), own);
          })(),
        );
      } catch (err) {
        throw new DeliveryError(
          `sending the message failed: ${(err as Error).message}`,
          'queue.nexthop_failed',
        );
      }
      return answer(await hop.commit(), vars, next_hop);
    } catch (err) {
      if (err instanceof DeliveryError) return failed(err);
      throw err;
    }
  },
});

/**
 * Writes the chunks to the next hop's stream with backpressure, ends it and waits until it finished; rejects
 * with the stream's error (the chunks are not read further), or with the chunks' error (the stream is destroyed). What stream.pipeline does, without the
 * AbortController (and its DOMException with a stack) that pipeline makes and aborts for every message.
 */
async function pumpTo(out: Writable, chunks: AsyncIterable<Buffer>): Promise<void> {
  const done = finished(out);
  done.catch(() => undefined); // observed below; an early error must not be an unhandled rejection
  try {
    for await (const chunk of chunks) {
      if (out.destroyed) break;
      if (!out.write(chunk)) await Promise.race([once(out, 'drain'), done]);
    }
  } catch (err) {
    // The message could not be read to the end: the next hop's stream is torn down, never ended as if whole.
    out.destroy(err as Error);
    throw err;
  }
  if (!out.destroyed) out.end();
  await done;
}
