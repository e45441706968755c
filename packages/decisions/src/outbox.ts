import {
  closeSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

/** A decision waiting to be published. */
export interface Pending {
  subject: string;
  data: Uint8Array;
  id: string;
  trace: Record<string, string>;
}

interface Line {
  s: string;
  i: string;
  t: Record<string, string>;
  d: string;
}

// How much of the journal is read back at once when it is replayed.
const READ_CHUNK = 256 * 1024;
// The journal starts over (truncated, its acknowledged point saved as 0) once everything in it is acknowledged
// and it has grown past this: one truncation per megabyte of decisions, not one per decision.
const START_OVER_BYTES = 1 << 20;

/**
 * A write-ahead journal of decisions: each one is appended to the file (one write(2), no fsync: the page cache
 * outlives a killed process) before it is published, and the point up to which JetStream acknowledged them is
 * kept beside it. What lies after that point (NATS away, the process stopped or killed) is sent in order by this
 * process once NATS is reachable, or by the next one after a restart; a re-sent decision is absorbed by the
 * stream's de-duplication (Nats-Msg-Id). Bounded by maxBytes of unacknowledged decisions: beyond it new ones are
 * dropped and counted, never the ones already kept. The file starts over when everything in it was acknowledged
 * and it is larger than `startOverBytes`.
 */
export class Outbox {
  private fd: number;
  /** Bytes written to the journal. */
  private written: number;
  /** Bytes acknowledged (everything before this offset is in the stream). */
  private acked: number;
  /** Unacknowledged decisions in the journal. */
  private pending = 0;
  private ackTimer: NodeJS.Timeout | undefined;
  /** Decisions refused because the journal was full. */
  dropped = 0;
  /** Read buffer of forEach, allocated once (next() runs for every batch published). */
  private readonly chunk = Buffer.allocUnsafe(READ_CHUNK);

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly startOverBytes = START_OVER_BYTES,
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'a+');
    this.written = fstatSync(this.fd).size;
    if (this.written > 0) {
      // A line torn by a crash mid-write is ended, so the next decision starts a line of its own.
      const last = Buffer.alloc(1);
      readSync(this.fd, last, 0, 1, this.written - 1);
      if (last[0] !== 10) this.written += writeSync(this.fd, '\n');
    }
    this.acked = Math.min(this.readAcked(), this.written);
    // Count what an earlier process left unacknowledged.
    this.forEach(this.acked, () => {
      this.pending += 1;
      return true;
    });
  }

  /** Unacknowledged decisions. */
  get size(): number {
    return this.pending;
  }

  /** Appends a decision; false (and counted) when the journal is full. */
  append(e: Pending): boolean {
    const line = Buffer.from(
      `${JSON.stringify({ s: e.subject, i: e.id, t: e.trace, d: Buffer.from(e.data).toString('base64') } satisfies Line)}\n`,
    );
    if (this.written - this.acked + line.length > this.maxBytes) {
      this.dropped += 1;
      return false;
    }
    writeSync(this.fd, line);
    this.written += line.length;
    this.pending += 1;
    return true;
  }

  /**
   * The oldest unacknowledged decisions (at most `max`), with the offset just past each, in order. Read from the
   * file, so memory stays bounded however far behind publishing is.
   */
  next(max: number): Array<{ pending: Pending; end: number }> {
    const out: Array<{ pending: Pending; end: number }> = [];
    this.forEach(this.acked, (l, end) => {
      out.push({ pending: { subject: l.s, id: l.i, trace: l.t, data: Buffer.from(l.d, 'base64') }, end });
      return out.length < max;
    });
    return out;
  }

  /** Marks everything before `end` (an offset from next()) as published. */
  ack(end: number, count: number): void {
    if (end <= this.acked) return;
    this.acked = end;
    this.pending = Math.max(0, this.pending - count);
    if (this.acked === this.written && this.written >= this.startOverBytes) {
      // Everything is in the stream: start the file over.
      this.reset();
      return;
    }
    this.ackTimer ??= setTimeout(() => {
      this.ackTimer = undefined;
      this.saveAcked();
    }, 200);
    this.ackTimer.unref?.();
  }

  /** Saves the acknowledged point and closes the file. */
  close(): void {
    clearTimeout(this.ackTimer);
    this.saveAcked();
    closeSync(this.fd);
  }

  private reset(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    // Appends (the file is open with O_APPEND) go on at the new end, 0.
    ftruncateSync(this.fd, 0);
    this.written = 0;
    this.acked = 0;
    this.pending = 0;
    this.saveAcked();
  }

  private readAcked(): number {
    try {
      return Number(readFileSync(`${this.path}.acked`, 'utf8')) || 0;
    } catch {
      return 0;
    }
  }

  private saveAcked(): void {
    writeFileSync(`${this.path}.acked.tmp`, String(this.acked));
    renameSync(`${this.path}.acked.tmp`, `${this.path}.acked`);
  }

  /** Visits the complete lines from `from` on, with the offset after each, until visit returns false. */
  private forEach(from: number, visit: (line: Line, end: number) => boolean): void {
    let pos = from;
    let carry = Buffer.alloc(0);
    const chunk = this.chunk;
    while (pos + carry.length < this.written) {
      const n = readSync(this.fd, chunk, 0, READ_CHUNK, pos + carry.length);
      if (n <= 0) break;
      let buf = Buffer.concat([carry, chunk.subarray(0, n)]);
      let start = 0;
      for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, start)) {
        const raw = buf.subarray(start, nl).toString();
        start = nl + 1;
        if (!raw) continue;
        let line: Line;
        try {
          line = JSON.parse(raw) as Line;
        } catch {
          continue; // a line torn by a crash mid-write
        }
        if (!visit(line, pos + start)) return;
      }
      pos += start;
      buf = buf.subarray(start);
      carry = Buffer.from(buf);
    }
  }
}
