import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { events } from '@smtpguard/contracts';

/** A time window; either end open. */
export interface Window {
  since?: Date;
  until?: Date;
}

const inWindow = (d: events.Decision, w: Window) =>
  (!w.since || (d.time && d.time >= w.since)) && (!w.until || (d.time && d.time <= w.until));

/** The decisions of the JSON-lines file the embedded mode writes (decisions.file), in order, within the window. */
export async function readDecisionFile(path: string, window: Window = {}): Promise<events.Decision[]> {
  const out: events.Decision[] = [];
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let d: events.Decision;
    try {
      d = events.Decision.fromJSON(JSON.parse(line));
    } catch {
      continue; // a line being written while we read
    }
    if (inWindow(d, window)) out.push(d);
  }
  return out;
}

export interface StreamSource {
  servers: string[];
  stream: string;
  connectTimeoutMs: number;
}

/**
 * The decisions kept in the JetStream stream (nats.decisionStream), from `since` (the start of the stream
 * without it) to what the stream holds now, read with an ordered consumer (ephemeral, nothing is acknowledged
 * or changed).
 */
export async function readDecisionStream(src: StreamSource, window: Window = {}): Promise<events.Decision[]> {
  const nc = await connect({ servers: src.servers, timeout: src.connectTimeoutMs, name: 'smtpguard-cli' });
  try {
    const jsm = await jetstreamManager(nc, { timeout: src.connectTimeoutMs });
    const info = await jsm.streams.info(src.stream);
    const out: events.Decision[] = [];
    if (!info.state.messages) return out;
    const js = jetstream(nc, { timeout: src.connectTimeoutMs });
    // The stream holds only decision subjects; no filter (filter_subjects needs nats-server 2.10, Debian has 2.9).
    const consumer = await js.consumers.get(src.stream, {
      ...(window.since
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: window.since.toISOString() }
        : { deliver_policy: DeliverPolicy.All }),
    });
    for (;;) {
      const m = await consumer.next({ expires: 2000 });
      if (!m) break;
      const d = events.Decision.decode(m.data);
      if (inWindow(d, window)) out.push(d);
      if (m.info.pending === 0 || (window.until && d.time && d.time > window.until)) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}
