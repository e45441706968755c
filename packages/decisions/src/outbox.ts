import { createReadStream } from 'node:fs';
import { appendFile, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';

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

/**
 * Decisions that could not be published yet, on disk: one JSON line each, appended in order, bounded by
 * maxBytes (beyond it new ones are dropped and counted, never the ones already kept). Drained in order when NATS
 * is reachable again, also by the next process after a restart; a drain that stops half-way keeps the rest.
 */
export class Outbox {
  private bytes = 0;
  private lines = 0;
  /** Decisions refused because the outbox was full. */
  dropped = 0;
  private ready: Promise<void>;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
  ) {
    this.ready = this.init();
  }

  private async init(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const s = await stat(this.path).catch(() => undefined);
    if (!s) return;
    this.bytes = s.size;
    // Count the lines left by an earlier process.
    for await (const _ of createInterface({ input: createReadStream(this.path) })) this.lines += 1;
  }

  /** Decisions kept on disk. */
  get size(): number {
    return this.lines;
  }

  /** Appends decisions (in order); returns how many were dropped because the outbox is full. */
  append(entries: Pending[]): Promise<number> {
    return this.serial(async () => {
      await this.ready;
      let text = '';
      let dropped = 0;
      for (const e of entries) {
        const line = `${JSON.stringify({ s: e.subject, i: e.id, t: e.trace, d: Buffer.from(e.data).toString('base64') } satisfies Line)}\n`;
        if (this.bytes + text.length + line.length > this.maxBytes) {
          dropped += 1;
          continue;
        }
        text += line;
      }
      if (text) {
        await appendFile(this.path, text);
        this.bytes += Buffer.byteLength(text);
        this.lines += entries.length - dropped;
      }
      this.dropped += dropped;
      return dropped;
    });
  }

  /**
   * Sends every kept decision in order with `send` (which resolves once the decision is acknowledged). Stops at
   * the first failure and keeps that one and the rest for the next drain. Resolves with how many were sent.
   */
  drain(send: (p: Pending) => Promise<void>): Promise<number> {
    return this.serial(async () => {
      await this.ready;
      if (this.lines === 0) return 0;
      let sent = 0;
      const rest: string[] = [];
      let failed = false;
      for await (const raw of createInterface({ input: createReadStream(this.path) })) {
        if (!raw) continue;
        if (failed) {
          rest.push(raw);
          continue;
        }
        const l = JSON.parse(raw) as Line;
        try {
          await send({ subject: l.s, id: l.i, trace: l.t, data: Buffer.from(l.d, 'base64') });
          sent += 1;
        } catch {
          failed = true;
          rest.push(raw);
        }
      }
      if (rest.length) {
        // Rewrite what is left (atomically: a crash keeps the whole old file, and the stream's de-duplication
        // by Nats-Msg-Id absorbs what is sent twice within its window).
        const text = `${rest.join('\n')}\n`;
        await writeFile(`${this.path}.tmp`, text);
        await rename(`${this.path}.tmp`, this.path);
        this.bytes = Buffer.byteLength(text);
        this.lines = rest.length;
      } else {
        await rm(this.path, { force: true });
        this.bytes = 0;
        this.lines = 0;
      }
      return sent;
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
