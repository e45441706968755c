import { Transform, type TransformCallback } from 'node:stream';

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;
const CRLF = Buffer.from('\r\n');
const RECEIVED = 'received:';

/** Where an anomaly was first seen and how often. */
export interface Occurrences {
  count: number;
  /** Octet offset of the first one in the message as the client sent it; -1 when none. */
  first: number;
}

/** What the inspector learned about a message while it streamed through; the DATA checks decide on it. */
export interface DataFacts {
  /** Message octets received (after dot-unstuffing), as the client sent them. */
  bytes: number;
  bareLf: Occurrences;
  bareCr: Occurrences;
  nul: Occurrences;
  /** Longest line in octets, CRLF included (a line still growing counts too). */
  longestLine: number;
  /** Received header fields in the header section. */
  receivedHeaders: number;
  /** Octets of the header section (up to the empty line, or all of a message that has none). */
  headerBytes: number;
  /** The client ended the message (the final dot arrived); false when it went away or was cut off. */
  complete: boolean;
}

export interface InspectorOptions {
  /** Bare LF and bare CR become CRLF and NUL is dropped in what is passed on. */
  normalize: boolean;
  /** Asked after each chunk: once it says true, nothing more is passed on (the rest is only counted). */
  violated: (facts: DataFacts) => boolean;
}

export function emptyFacts(): DataFacts {
  return {
    bytes: 0,
    bareLf: { count: 0, first: -1 },
    bareCr: { count: 0, first: -1 },
    nul: { count: 0, first: -1 },
    longestLine: 0,
    receivedHeaders: 0,
    headerBytes: 0,
    complete: false,
  };
}

function note(o: Occurrences, offset: number): void {
  if (o.count === 0) o.first = offset;
  o.count += 1;
}

/**
 * A pass-through Transform over the DATA stream (smtp-server already removed dot-stuffing and the final
 * dot). It counts octets, bare LF / bare CR / NUL (SMTP smuggling rides on the first two), line lengths and
 * Received headers, in one pass with Buffer.indexOf, so a message is never held whole in memory. With
 * `normalize` it rewrites the anomalies; once `violated` says a check will refuse the message, it stops
 * passing bytes on (nothing more is kept) but keeps reading, so the client can finish and get its reply.
 */
export class DataInspector extends Transform {
  readonly facts = emptyFacts();
  private stopped = false;
  /** The previous chunk ended with CR; whether it is bare depends on the next octet. */
  private pendingCr = false;
  /** Octets of the current line so far (CRLF included once it ends). */
  private lineLength = 0;
  private inHeaders = true;
  /** First octets of the current header line, to recognize "Received:" across chunk boundaries. */
  private headerStart = '';

  constructor(private readonly opts: InspectorOptions) {
    super();
  }

  /** Whether bytes are still passed on. */
  get passing(): boolean {
    return !this.stopped;
  }

  /** Stops passing bytes on; the stream keeps counting until the client ends the message. */
  stop(): void {
    this.stopped = true;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const base = this.facts.bytes - (this.pendingCr ? 1 : 0);
    const out = this.scan(chunk, base);
    this.facts.bytes += chunk.length;
    if (!this.stopped && this.opts.violated(this.facts)) this.stopped = true;
    if (!this.stopped && out.length) this.push(out);
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.pendingCr) {
      // A CR at the very end has no LF after it.
      note(this.facts.bareCr, this.facts.bytes - 1);
      this.endLine(1);
      this.pendingCr = false;
      if (!this.stopped && this.opts.violated(this.facts)) this.stopped = true;
      if (!this.stopped) this.push(this.opts.normalize ? CRLF : Buffer.from([CR]));
    }
    this.facts.longestLine = Math.max(this.facts.longestLine, this.lineLength);
    done();
  }

  /** Counts what the chunk holds; returns the bytes to pass on (normalized when asked). */
  private scan(input: Buffer, base: number): Buffer {
    // A CR held back from the previous chunk is scanned together with this chunk.
    const chunk = this.pendingCr ? Buffer.concat([Buffer.from([CR]), input]) : input;
    this.pendingCr = chunk.length > 0 && chunk[chunk.length - 1] === CR;
    const end = this.pendingCr ? chunk.length - 1 : chunk.length;
    let anomalies = false;

    for (let i = chunk.indexOf(NUL); i >= 0 && i < end; i = chunk.indexOf(NUL, i + 1)) {
      note(this.facts.nul, base + i);
      anomalies = true;
    }
    for (let i = chunk.indexOf(CR); i >= 0 && i < end; i = chunk.indexOf(CR, i + 1)) {
      if (chunk[i + 1] !== LF) {
        note(this.facts.bareCr, base + i);
        anomalies = true;
      }
    }
    let lineStart = 0;
    for (let i = chunk.indexOf(LF); i >= 0 && i < end; i = chunk.indexOf(LF, i + 1)) {
      const crlf = i > 0 && chunk[i - 1] === CR;
      if (!crlf) {
        note(this.facts.bareLf, base + i);
        anomalies = true;
      }
      if (this.inHeaders) this.headerLine(chunk, lineStart, i);
      this.endLine(i + 1 - lineStart);
      lineStart = i + 1;
    }
    if (this.inHeaders) this.headerLine(chunk, lineStart, end, true);
    this.lineLength += end - lineStart;
    this.facts.longestLine = Math.max(this.facts.longestLine, this.lineLength);

    const pass = chunk.subarray(0, end);
    return this.opts.normalize && anomalies ? normalized(pass) : pass;
  }

  private endLine(length: number): void {
    this.facts.longestLine = Math.max(this.facts.longestLine, this.lineLength + length);
    this.lineLength = 0;
  }

  /** Follows the header section: counts Received fields, ends at the first empty line. */
  private headerLine(chunk: Buffer, from: number, to: number, partial = false): void {
    this.facts.headerBytes += to - from + (partial ? 0 : 1);
    if (this.headerStart.length < RECEIVED.length) {
      this.headerStart += chunk.toString('latin1', from, Math.min(to, from + RECEIVED.length));
    }
    if (partial) return;
    const line = this.headerStart;
    this.headerStart = '';
    if (line === '' || line === '\r') {
      this.inHeaders = false;
      return;
    }
    if (line.length >= RECEIVED.length && line.slice(0, RECEIVED.length).toLowerCase() === RECEIVED) {
      this.facts.receivedHeaders += 1;
    }
  }
}

/** Bare LF and bare CR become CRLF, NUL is dropped. */
function normalized(chunk: Buffer): Buffer {
  const out = Buffer.allocUnsafe(chunk.length * 2);
  let n = 0;
  for (let i = 0; i < chunk.length; i++) {
    const b = chunk[i] as number;
    if (b === NUL) continue;
    if (b === CR) {
      out[n++] = CR;
      out[n++] = LF;
      if (chunk[i + 1] === LF) i++;
      continue;
    }
    if (b === LF) {
      out[n++] = CR;
      out[n++] = LF;
      continue;
    }
    out[n++] = b;
  }
  return out.subarray(0, n);
}
