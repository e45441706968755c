import type { Readable, Writable } from 'node:stream';
import { type DataFacts, DataInspector } from './inspector.js';

export interface ReceiveOptions {
  /** Where the message goes while it arrives (a MessageBuffer). */
  sink: Writable;
  normalize: boolean;
  /** Whether the facts so far already decide a refusal (the DATA checks' `violated`). */
  violated: (facts: DataFacts) => boolean;
}

export interface Received {
  facts: DataFacts;
  /** Everything the client sent is in the sink (no violation stopped it, the sink did not fail). */
  kept: boolean;
}

/**
 * Reads a message from the client (smtp-server's DATA stream) through the DataInspector into the sink, with
 * backpressure, so that it is never held whole in memory. When a DATA check's verdict is already certain (too
 * large, bare LF, ...) nothing more is kept: the rest of the client's message is only read and counted, so
 * the client can finish and get its reply. Resolves when the client's message ended, or the client went away
 * (facts.complete is false).
 */
export async function receiveMessage(source: Readable, opts: ReceiveOptions): Promise<Received> {
  let detached = false;
  const inspector = new DataInspector({
    normalize: opts.normalize,
    violated: (facts) => {
      const v = opts.violated(facts);
      if (v) detach();
      return v;
    },
  });
  function detach(): void {
    if (detached) return;
    detached = true;
    inspector.stop();
    inspector.unpipe(opts.sink);
    inspector.resume();
  }
  const sinkDone = new Promise<void>((resolve) => {
    opts.sink.once('finish', resolve);
    // A sink that closes (or fails) before the end takes nothing more: read the rest of the client anyway.
    opts.sink.once('close', () => {
      if (!opts.sink.writableFinished) detach();
      resolve();
    });
    opts.sink.once('error', () => {
      detach();
      resolve();
    });
  });
  const ended = new Promise<boolean>((resolve) => {
    inspector.once('end', () => resolve(true));
    source.once('error', () => resolve(false));
    source.once('close', () => {
      if (!source.readableEnded) resolve(false);
    });
    if (source.destroyed && !source.readableEnded) resolve(false);
  });
  inspector.pipe(opts.sink);
  source.pipe(inspector);
  const complete = await ended;
  inspector.facts.complete = complete;
  if (!complete) detach();
  else if (!detached) await sinkDone;
  return { facts: inspector.facts, kept: complete && !detached && opts.sink.writableFinished };
}
