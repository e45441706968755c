import { mkdirSync } from 'node:fs';
import { type FileHandle, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { DirSync } from './dir-sync.js';
import {
  DeliveryError,
  type HopEnvelope,
  type HopReply,
  type HopTransaction,
  type NextHop,
} from './next-hop.js';

/** Files in tmp/ older than this were left by a crash (never answered 250) and are removed at start. */
const STALE_TMP_MS = 60 * 60 * 1000;

const RCPT_OK: HopReply = { code: 250, enhanced: '2.1.5', text: 'OK' };
const COMMITTED: HopReply = { code: 250, enhanced: '2.0.0', text: 'OK' };

/**
 * Embedded next hop: one file per message in <dir>/new, maildir-style: written to <dir>/tmp, fsynced,
 * renamed into new/ and the directory fsynced (one fsync shared by the messages committing at the same time:
 * DirSync's group commit), so a file in new/ is always complete and durable before its 250. The
 * envelope is kept in Return-Path and X-Smtpguard-Envelope-To headers at the top of the file. All I/O on
 * the message path is asynchronous (a slow disk must not stall the other sessions).
 */
export class SpoolNextHop implements NextHop {
  readonly maxRecipients = 0;
  /** The clean-up of stale tmp/ files started at construction (never rejects; awaited by tests). */
  readonly swept: Promise<void>;
  private readonly newDir: DirSync;

  constructor(readonly dir: string) {
    // Synchronous once at start: the service must not accept mail it has nowhere to put.
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    mkdirSync(join(dir, 'new'), { recursive: true });
    this.swept = sweepTmp(join(dir, 'tmp'), STALE_TMP_MS);
    this.newDir = new DirSync(join(dir, 'new'));
  }

  describe(): string {
    return `spool ${this.dir}`;
  }

  begin(envelope: HopEnvelope): HopTransaction {
    return new SpoolTransaction(this.dir, envelope, this.newDir);
  }

  async close(): Promise<void> {}
}

type Phase = 'rcpt' | 'data' | 'committing' | 'done' | 'aborted';

class SpoolTransaction implements HopTransaction {
  private phase: Phase = 'rcpt';
  private readonly recipients: string[] = [];
  /** <ms>.<queue id>.eml, set by data(). */
  private name = '';
  private file: FileHandle | undefined;
  private stream: Writable | undefined;
  /** The first failed write; the stream swallows it (no 'error' event) and commit() reports it. */
  private writeError: Error | undefined;

  constructor(
    private readonly dir: string,
    private readonly envelope: HopEnvelope,
    /** fsync of new/, shared by the transactions committing at the same time (group commit). */
    private readonly newDir: DirSync,
  ) {}

  private get tmpPath(): string {
    return join(this.dir, 'tmp', this.name);
  }

  async rcpt(address: string): Promise<HopReply> {
    if (this.phase !== 'rcpt') throw new DeliveryError('rcpt() after data()', 'queue.spool_failed');
    this.recipients.push(address);
    return RCPT_OK;
  }

  async data(): Promise<{ stream: Writable }> {
    if (this.phase !== 'rcpt') {
      throw new DeliveryError('data() called twice or after abort', 'queue.spool_failed');
    }
    this.phase = 'data';
    this.name = `${Date.now()}.${this.envelope.id}.eml`;
    let file: FileHandle | undefined;
    try {
      file = await open(this.tmpPath, 'wx');
      this.file = file;
      await writeAll(file, Buffer.from(head(this.envelope.from, this.recipients)));
    } catch (err) {
      await this.discard();
      throw spoolError(err);
    }
    // abort() may have come while the file was being opened (TS narrows phase to 'data' here: it cannot).
    if ((this.phase as Phase) === 'aborted') {
      await this.discard();
      throw new DeliveryError('spool transaction aborted', 'queue.spool_failed');
    }
    this.stream = new Writable({
      writev: (chunks, callback) => {
        if (this.writeError) return callback();
        writeAll(file, Buffer.concat(chunks.map((c) => c.chunk as Buffer))).then(
          () => callback(),
          (err: Error) => {
            this.writeError = err;
            callback();
          },
        );
      },
    });
    return { stream: this.stream };
  }

  async commit(): Promise<HopReply> {
    const stream = this.stream;
    const file = this.file;
    if (this.phase !== 'data' || !stream || !file) {
      throw new DeliveryError('commit() without data()', 'queue.spool_failed');
    }
    this.phase = 'committing';
    let renamed = false;
    try {
      if (!stream.writableFinished) {
        await new Promise<void>((resolve) => {
          stream.once('finish', resolve);
          stream.once('close', resolve);
        });
      }
      if (this.writeError) throw this.writeError;
      if (!stream.writableFinished) throw new Error('the message stream was destroyed');
      await file.sync();
      this.file = undefined;
      await file.close();
      const target = join(this.dir, 'new', this.name);
      await rename(this.tmpPath, target);
      renamed = true;
      await this.newDir.sync();
      this.phase = 'done';
      return COMMITTED;
    } catch (err) {
      this.phase = 'done';
      await this.discard();
      // The client is told 4xx, so the file must not stay in new/ when only the directory fsync failed.
      if (renamed) await unlink(join(this.dir, 'new', this.name)).catch(() => undefined);
      throw spoolError(err);
    }
  }

  abort(): void {
    // After commit() started the outcome is commit()'s (it cleans up itself when it fails).
    if (this.phase !== 'rcpt' && this.phase !== 'data') return;
    const hadFile = this.phase === 'data';
    this.phase = 'aborted';
    this.stream?.destroy();
    // data() still opening the file cleans up itself when it sees 'aborted'.
    if (hadFile && this.file) void this.discard();
  }

  /** Closes the file (if open) and removes it from tmp/. Never rejects. */
  private async discard(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    await file?.close().catch(() => undefined);
    await unlink(this.tmpPath).catch(() => undefined);
  }
}

/** The envelope as headers at the top of the file (line breaks removed: they would forge headers). */
function head(from: string, recipients: string[]): string {
  const clean = (s: string) => s.replace(/[\r\n]/g, '');
  return (
    `Return-Path: <${clean(from)}>\r\n` +
    recipients.map((r) => `X-Smtpguard-Envelope-To: <${clean(r)}>\r\n`).join('')
  );
}

/** FileHandle.write may write less than asked; loop until all of it is written. */
async function writeAll(file: FileHandle, buf: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buf.length) {
    const { bytesWritten } = await file.write(buf, offset, buf.length - offset);
    offset += bytesWritten;
  }
}

async function sweepTmp(dir: string, maxAgeMs: number): Promise<void> {
  try {
    const cutoff = Date.now() - maxAgeMs;
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      try {
        const st = await stat(path);
        if (st.isFile() && st.mtimeMs < cutoff) await unlink(path);
      } catch {
        // gone meanwhile, or not ours to remove: nothing to report (no logger here)
      }
    }
  } catch {
    // the directory cannot be read: data() reports the problem when it matters
  }
}

function spoolError(err: unknown): DeliveryError {
  if (err instanceof DeliveryError) return err;
  return new DeliveryError(`spool: ${(err as Error)?.message ?? String(err)}`, 'queue.spool_failed');
}
