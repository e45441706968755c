import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { DeliveryError, newMessageId } from './next-hop.js';
import { SpoolNextHop } from './spool-hop.js';

describe('SpoolNextHop', { timeout: 10_000 }, () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smtpguard-spool-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const files = async (spool: string, sub: 'tmp' | 'new') => readdir(join(spool, sub));

  it('describes itself and has no recipient limit', () => {
    const hop = new SpoolNextHop(join(dir, 'describe'));
    assert.equal(hop.describe(), `spool ${join(dir, 'describe')}`);
    assert.equal(hop.maxRecipients, 0);
  });

  it('writes the envelope head and the message bytes, visible in new/ only after commit', async () => {
    const spool = join(dir, 'commit');
    const hop = new SpoolNextHop(spool);
    const id = newMessageId();
    const tx = hop.begin({ id, from: 'sender@example.org' });
    assert.deepEqual(await tx.rcpt('a@example.org'), { code: 250, enhanced: '2.1.5', text: 'OK' });
    assert.deepEqual(await tx.rcpt('b@example.org'), { code: 250, enhanced: '2.1.5', text: 'OK' });
    const data = await tx.data();
    assert.ok('stream' in data);
    const body = 'Subject: hi\r\n\r\n.not stuffed\r\n.\r\nend';
    data.stream.write(body.slice(0, 10));
    data.stream.end(body.slice(10));
    assert.equal((await files(spool, 'new')).length, 0);
    assert.deepEqual(await tx.commit(), { code: 250, enhanced: '2.0.0', text: 'OK' });
    const names = await files(spool, 'new');
    assert.equal(names.length, 1);
    assert.match(names[0] ?? '', new RegExp(`^\\d+\\.${id}\\.eml$`));
    assert.deepEqual(await files(spool, 'tmp'), []);
    assert.equal(
      await readFile(join(spool, 'new', names[0] ?? ''), 'utf8'),
      'Return-Path: <sender@example.org>\r\n' +
        'X-Smtpguard-Envelope-To: <a@example.org>\r\n' +
        'X-Smtpguard-Envelope-To: <b@example.org>\r\n' +
        body,
    );
  });

  it('keeps the null sender and an empty message', async () => {
    const spool = join(dir, 'null');
    const hop = new SpoolNextHop(spool);
    const tx = hop.begin({ id: newMessageId(), from: '' });
    await tx.rcpt('postmaster@example.org');
    const data = await tx.data();
    assert.ok('stream' in data);
    data.stream.end();
    assert.equal((await tx.commit()).code, 250);
    const [name] = await files(spool, 'new');
    assert.equal(
      await readFile(join(spool, 'new', name ?? ''), 'utf8'),
      'Return-Path: <>\r\nX-Smtpguard-Envelope-To: <postmaster@example.org>\r\n',
    );
  });

  it('abort during the message leaves nothing in tmp/ or new/', async () => {
    const spool = join(dir, 'abort');
    const hop = new SpoolNextHop(spool);
    const tx = hop.begin({ id: newMessageId(), from: 'sender@example.org' });
    await tx.rcpt('a@example.org');
    const data = await tx.data();
    assert.ok('stream' in data);
    data.stream.write('Subject: partial\r\n');
    await delay(20);
    assert.equal((await files(spool, 'tmp')).length, 1);
    tx.abort();
    tx.abort();
    for (let i = 0; i < 100 && (await files(spool, 'tmp')).length; i++) await delay(10);
    assert.deepEqual(await files(spool, 'tmp'), []);
    assert.deepEqual(await files(spool, 'new'), []);
    await assert.rejects(tx.commit(), DeliveryError);
  });

  it('abort before data() holds nothing', async () => {
    const spool = join(dir, 'abort-early');
    const hop = new SpoolNextHop(spool);
    const tx = hop.begin({ id: newMessageId(), from: 'sender@example.org' });
    await tx.rcpt('a@example.org');
    tx.abort();
    await assert.rejects(tx.data(), DeliveryError);
    assert.deepEqual(await files(spool, 'tmp'), []);
    assert.deepEqual(await files(spool, 'new'), []);
  });

  it('a failing spool rejects with queue.spool_failed and leaves no file', async () => {
    const spool = join(dir, 'fail');
    const hop = new SpoolNextHop(spool);
    const tx = hop.begin({ id: newMessageId(), from: 'sender@example.org' });
    await tx.rcpt('a@example.org');
    const data = await tx.data();
    assert.ok('stream' in data);
    data.stream.end('x\r\n');
    // new/ replaced by a file: the rename fails.
    await rm(join(spool, 'new'), { recursive: true });
    await writeFile(join(spool, 'new'), '');
    await assert.rejects(tx.commit(), (err: unknown) => {
      assert.ok(err instanceof DeliveryError);
      assert.equal(err.reasonCode, 'queue.spool_failed');
      return true;
    });
    assert.deepEqual(await files(spool, 'tmp'), []);
  });

  it('removes files older than an hour from tmp/ at start', async () => {
    const spool = join(dir, 'sweep');
    new SpoolNextHop(spool);
    const old = join(spool, 'tmp', '1.OLD.eml');
    const fresh = join(spool, 'tmp', '2.FRESH.eml');
    await writeFile(old, 'x');
    await writeFile(fresh, 'y');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(old, twoHoursAgo, twoHoursAgo);
    const hop = new SpoolNextHop(spool);
    await hop.swept;
    assert.deepEqual(await files(spool, 'tmp'), ['2.FRESH.eml']);
  });
});
