import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs, { readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MessageBuffer, prepareBufferDir } from './message-buffer.js';

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of r) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Writes the chunks (waiting for 'drain' when asked to) and ends the buffer; resolves when it finished. */
async function fill(buf: MessageBuffer, chunks: Array<string | Buffer>): Promise<void> {
  for (const chunk of chunks) {
    if (!buf.write(chunk)) await once(buf, 'drain');
  }
  buf.end();
  await once(buf, 'finish');
}

/** Waits (a macrotask at a time, at most a second) until `cond` holds. */
async function until(cond: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + 1000;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const UUID_MSG = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.msg$/;

describe('MessageBuffer', { timeout: 5000 }, () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtpguard-buffer-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps a small message in memory and gives it back', async () => {
    const buf = new MessageBuffer(dir, 1024);
    await fill(buf, ['Subject: hi\r\n', '\r\n', 'Hello\r\n']);
    assert.equal(buf.spilled, false);
    assert.equal(buf.size, 22);
    assert.deepEqual(await readdir(dir), []);
    assert.equal((await readAll(buf.reader())).toString(), 'Subject: hi\r\n\r\nHello\r\n');
    await buf.dispose();
  });

  it('keeps a message of exactly memoryBytes in memory', async () => {
    const buf = new MessageBuffer(dir, 10);
    await fill(buf, ['12345', '67890']);
    assert.equal(buf.spilled, false);
    assert.equal(buf.size, 10);
    assert.deepEqual(await readdir(dir), []);
    assert.equal((await readAll(buf.reader())).toString(), '1234567890');
  });

  it('gives the message from the start each time reader() is called (memory)', async () => {
    const buf = new MessageBuffer(dir, 1024);
    await fill(buf, ['one\r\n', 'two\r\n']);
    assert.equal((await readAll(buf.reader())).toString(), 'one\r\ntwo\r\n');
    assert.equal((await readAll(buf.reader())).toString(), 'one\r\ntwo\r\n');
  });

  it('spills a message larger than memoryBytes to a file in dir, with the part written before', async () => {
    const buf = new MessageBuffer(dir, 16);
    await fill(buf, ['a'.repeat(10), 'b'.repeat(10), 'c'.repeat(10)]);
    assert.equal(buf.spilled, true);
    assert.equal(buf.size, 30);
    const files = await readdir(dir);
    assert.equal(files.length, 1);
    const file = files[0] ?? '';
    assert.match(file, UUID_MSG);
    const expected = `${'a'.repeat(10)}${'b'.repeat(10)}${'c'.repeat(10)}`;
    assert.equal((await readFile(join(dir, file))).toString(), expected);
    assert.equal((await readAll(buf.reader())).toString(), expected);
    // Readable again from the start.
    assert.equal((await readAll(buf.reader())).toString(), expected);
    await buf.dispose();
  });

  it('spills at once with memoryBytes 0', async () => {
    const buf = new MessageBuffer(dir, 0);
    buf.write('x');
    assert.equal(buf.spilled, true);
    await fill(buf, ['yz']);
    assert.equal(buf.size, 3);
    assert.equal((await readdir(dir)).length, 1);
    assert.equal((await readAll(buf.reader())).toString(), 'xyz');
    await buf.dispose();
  });

  it('gives every octet back in order, binary included', async () => {
    const chunks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(1000, i));
    chunks.push(Buffer.from([0, 13, 10, 255, 128]));
    const buf = new MessageBuffer(dir, 5000);
    await fill(buf, chunks);
    assert.equal(buf.spilled, true);
    assert.deepEqual(await readAll(buf.reader()), Buffer.concat(chunks));
    await buf.dispose();
  });

  it('removes the file on dispose, and a second dispose does no harm', async () => {
    const buf = new MessageBuffer(dir, 4);
    await fill(buf, ['more than four']);
    assert.equal((await readdir(dir)).length, 1);
    await buf.dispose();
    assert.deepEqual(await readdir(dir), []);
    await buf.dispose();
    assert.deepEqual(await readdir(dir), []);
  });

  it('removes the file when disposed before the message ended (the client went away)', async () => {
    const buf = new MessageBuffer(dir, 4);
    buf.on('error', () => undefined); // as connection.ts does: dispose() may fail the write in flight
    buf.write('more than four');
    await until(async () => (await readdir(dir)).length === 1);
    await buf.dispose();
    assert.deepEqual(await readdir(dir), []);
  });

  it('leaves no file behind when disposed while the file is still being opened', async (t) => {
    // Makes the race deterministic: the file's open (fs.open, which fs streams call) completes 20 ms late.
    const open = fs.open;
    let delayed = false;
    let opened: () => void = () => undefined;
    const openDone = new Promise<void>((resolve) => {
      opened = resolve;
    });
    t.mock.method(fs, 'open', (...args: unknown[]) => {
      const cb = args.pop() as (err: Error | null, fd?: number) => void;
      if (!String(args[0]).startsWith(dir)) return (open as (...a: unknown[]) => void)(...args, cb);
      delayed = true;
      setTimeout(() => {
        (open as (...a: unknown[]) => void)(...args, (err: Error | null, fd?: number) => {
          cb(err, fd);
          opened();
        });
      }, 20);
    });
    const buf = new MessageBuffer(dir, 4);
    buf.on('error', () => undefined); // as connection.ts does
    buf.write('more than four');
    assert.equal(buf.spilled, true);
    await buf.dispose();
    if (delayed) await openDone;
    assert.deepEqual(await readdir(dir), []);
  });

  it('disposes a buffer that never spilled, twice', async () => {
    const buf = new MessageBuffer(dir, 1024);
    await fill(buf, ['small']);
    await buf.dispose();
    await buf.dispose();
    assert.deepEqual(await readdir(dir), []);
  });

  it('applies backpressure: 5 MiB in 64 KiB chunks arrive whole and in order', async () => {
    const chunkSize = 64 * 1024;
    const count = 80; // 5 MiB
    const TAIL = 'the end\r\n';
    const buf = new MessageBuffer(dir, 256 * 1024);
    let refused = 0;
    let maxPending = 0;
    for (let i = 0; i < count; i++) {
      const chunk = Buffer.alloc(chunkSize, i % 251);
      chunk.writeUInt32BE(i, 0);
      if (!buf.write(chunk)) {
        refused += 1;
        maxPending = Math.max(maxPending, buf.writableLength);
        await once(buf, 'drain');
      }
    }
    // 'finish' means the file has the whole message: a reader opened then reads all of it.
    let onDiskAtFinish = -1;
    buf.once('finish', () => {
      const [file] = readdirSync(dir);
      onDiskAtFinish = file === undefined ? -1 : statSync(join(dir, file)).size;
    });
    buf.end(TAIL); // small: the file takes it without asking to wait
    await once(buf, 'finish');
    assert.equal(onDiskAtFinish, count * chunkSize + TAIL.length);
    assert.ok(refused > 0, 'write() never asked to wait');
    assert.ok(maxPending <= 2 * chunkSize, `${maxPending} octets were waiting`);
    assert.equal(buf.spilled, true);
    assert.equal(buf.size, count * chunkSize + TAIL.length);
    const back = await readAll(buf.reader());
    assert.equal(back.length, count * chunkSize + TAIL.length);
    assert.equal(back.subarray(count * chunkSize).toString(), TAIL);
    for (let i = 0; i < count; i++) {
      assert.equal(back.readUInt32BE(i * chunkSize), i, `chunk ${i} out of place`);
      assert.equal(back[i * chunkSize + chunkSize - 1], i % 251);
    }
    await buf.dispose();
    assert.deepEqual(await readdir(dir), []);
  });

  it('fails with the error of the file when it cannot be written', async () => {
    const buf = new MessageBuffer(join(dir, 'missing'), 4);
    const failed = once(buf, 'error');
    buf.write('more than four');
    const [err] = (await failed) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ENOENT');
    assert.equal(buf.destroyed, true);
    await buf.dispose();
  });
});

describe('prepareBufferDir', { timeout: 5000 }, () => {
  let root = '';
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'smtpguard-bufdir-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('creates the directory with its parents', async () => {
    const dir = join(root, 'state', 'buffer');
    await prepareBufferDir(dir);
    assert.equal((await stat(dir)).isDirectory(), true);
  });

  it('removes only the files older than an hour', async () => {
    const dir = join(root, 'buffer');
    await mkdir(dir);
    const now = Date.now() / 1000;
    const files = { old: now - 2 * 3600, stale: now - 3600 - 60, recent: now - 3600 + 60, fresh: now };
    for (const [name, mtime] of Object.entries(files)) {
      const p = join(dir, `${name}.msg`);
      await writeFile(p, name);
      await utimes(p, mtime, mtime);
    }
    await prepareBufferDir(dir);
    assert.deepEqual((await readdir(dir)).sort(), ['fresh.msg', 'recent.msg']);
    assert.equal(await readFile(join(dir, 'recent.msg'), 'utf8'), 'recent');
  });

  it('leaves an old subdirectory alone', async () => {
    const dir = join(root, 'buffer');
    await mkdir(join(dir, 'sub'), { recursive: true });
    const old = Date.now() / 1000 - 2 * 3600;
    await utimes(join(dir, 'sub'), old, old);
    await prepareBufferDir(dir);
    assert.deepEqual(await readdir(dir), ['sub']);
  });
});
