import type { Readable, Writable } from 'node:stream';
import { DeliveryError, type HopReply, type HopTransaction } from '../delivery/next-hop.js';
import { type DataFacts, DataInspector } from './inspector.js';

export interface ReceiveOptions {
  /** Trace headers written before the message (Received, X-Greylist). */
  head: string;
  hop: HopTransaction;
  normalize: boolean;
  /** Whether the facts so far already decide a refusal (the DATA checks' `violated`). */
  violated: (facts: DataFacts) => boolean;
}

export interface Received {
  facts: DataFacts;
  /** The next hop refused DATA; nothing was sent to it. */
  dataRefusal?: HopReply;
  /** Sending the message to the next hop (or the spool) failed. */
  streamError?: DeliveryError;
  /** The message went to the next hop whole (the final dot may be sent). */
  forwarded: boolean;
}

/**
 * Streams a message from the client (smtp-server's DATA stream) through the DataInspector to the next hop's
 * DATA (or the spool file), so that it is never held whole in memory. When a DATA check's verdict is already
 * certain (too large, bare LF, ...) or the next hop fails, the next hop's transaction is abandoned at once and
 * the rest of the client's message is only read and counted, so the client can finish and get its reply.
 * Resolves when the client's message ended (or the client went away: facts.complete is false).
 */
export async function receiveMessage(source: Readable, opts: ReceiveOptions): Promise<Received> {
  let sink: Writable | undefined;
  let dataRefusal: HopReply | undefined;
  let streamError: DeliveryError | undefined;
  try {
    const opened = await opts.hop.data();
    if ('refused' in opened) dataRefusal = opened.refused;
    else sink = opened.stream;
  } catch (err) {
    if (!(err instanceof DeliveryError)) throw err;
    streamError = err;
  }

  let detached = false;
  const inspector = new DataInspector({
    normalize: opts.normalize,
    violated: (facts) => {
      const v = opts.violated(facts);
      if (v) detach();
      return v;
    },
  });
  // Stops feeding the next hop; the inspector keeps reading the client.
  function detach(): void {
    if (detached) return;
    detached = true;
    inspector.stop();
    if (sink) inspector.unpipe(sink);
    opts.hop.abort();
    inspector.resume();
  }

  const sinkDone = sink
    ? new Promise<void>((resolve) => {
        const s = sink as Writable;
        s.once('finish', resolve);
        s.once('close', resolve);
        s.once('error', (err) => {
          streamError ??=
            err instanceof DeliveryError ? err : new DeliveryError(err.message, 'queue.nexthop_failed');
          detach();
          resolve();
        });
      })
    : Promise.resolve();

  if (sink) {
    sink.write(opts.head);
    inspector.pipe(sink);
  } else {
    detach();
  }

  const ended = new Promise<boolean>((resolve) => {
    inspector.once('end', () => resolve(true));
    source.once('error', () => resolve(false));
    source.once('close', () => {
      if (!source.readableEnded) resolve(false);
    });
  });
  source.pipe(inspector);
  const complete = await ended;
  inspector.facts.complete = complete;
  if (!complete) {
    detach();
  } else if (!detached) {
    await sinkDone;
  }
  return {
    facts: inspector.facts,
    dataRefusal,
    streamError,
    forwarded: complete && !detached && !streamError && !dataRefusal,
  };
}
