import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';

/**
 * Holds a message while it arrives: in memory up to `memoryBytes`, beyond that in a file in `dir` (the edge's
 * state directory), so a message is never held whole in memory whatever its size. The DATA checks read it
 * back (`reader()`), and the hand-off streams it to the next hop after the trace headers, which include what
 * was learned from the whole message (Authentication-Results).
 */
export class MessageBuffer extends Writable {
  private chunks: Buffer[] = [];
  private file: WriteStream | undefined;
  private path: string | undefined;
  private disposed = false;
  /** Octets held. */
  size = 0;

  constructor(
    private readonly dir: string,
    private readonly memoryBytes: number,
  ) {
    super();
  }

  /** Whether the message went to a file. */
  get spilled(): boolean {
    return this.file !== undefined;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.size += chunk.length;
    if (!this.file && this.size <= this.memoryBytes) {
      this.chunks.push(chunk);
      done();
      return;
    }
    if (!this.file) {
      this.path = join(this.dir, `${randomUUID()}.msg`);
      this.file = createWriteStream(this.path, { flags: 'wx' });
      this.file.on('error', (err) => this.destroy(err));
      for (const c of this.chunks) this.file.write(c);
      this.chunks = [];
    }
    if (this.file.write(chunk)) done();
    else this.file.once('drain', () => done());
  }

  override _final(done: (err?: Error | null) => void): void {
    if (!this.file) {
      done();
      return;
    }
    this.file.end(() => done());
  }

  /** The whole message, from the start (after the buffer finished). */
  reader(): Readable {
    if (this.path) return createReadStream(this.path);
    return Readable.from(this.chunks, { objectMode: false });
  }

  /** Frees the memory and removes the file. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.chunks = [];
    const file = this.file;
    if (file && !file.closed) {
      // Closing waits for an open still under way, so the file exists (and is removed) after this.
      await new Promise<void>((resolve) => {
        file.once('close', () => resolve());
        file.destroy();
      });
    }
    if (this.path) await rm(this.path, { force: true });
  }
}

/**
 * The directory for buffered messages, created if needed; message files older than an hour are removed (left by a
 * crash: their clients were never answered 250 and retry).
 */
export async function prepareBufferDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const old = Date.now() - 3600_000;
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    const s = await stat(p).catch(() => undefined);
    if (s?.isFile() && s.mtimeMs < old) await rm(p, { force: true });
  }
}
