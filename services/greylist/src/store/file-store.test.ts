import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileGreylistStore } from './file-store.js';
import type { TripletRecord } from './store.js';

const rec = (n: number): TripletRecord => ({ firstSeen: n, lastSeen: n, passedAt: 0, passCount: n });
const tmp = () => mkdtemp(join(tmpdir(), 'sg-filestore-'));

describe('FileGreylistStore', () => {
  it('survives kill -9 in the middle of writing: everything acknowledged is there', async () => {
    const path = join(await tmp(), 'journal.jsonl');
    const storeUrl = new URL('./file-store.js', import.meta.url).href;
    // The child writes as fast as it can and acknowledges each completed update on stdout.
    const script = `
      const { FileGreylistStore } = await import(${JSON.stringify(storeUrl)});
      const s = new FileGreylistStore(${JSON.stringify(path)}, { sweepIntervalMs: 0 });
      for (let i = 0; ; i++) {
        await s.updateTriplet('192.0.2.0/24|sender' + i + '@a.test|rcpt@b.test', () => ({ firstSeen: i, lastSeen: i, passedAt: 0, passCount: 0 }));
        process.stdout.write(i + '\\n');
        await new Promise((r) => setImmediate(r)); // let stdout reach the parent
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let acked = -1;
    let buf = '';
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        if (lines.length) acked = Number(lines.at(-1));
        if (acked >= 3000 && !child.killed) child.kill('SIGKILL');
      });
      child.once('exit', () => resolve());
    });
    assert.ok(acked >= 3000, `the child acknowledged ${acked} writes before the kill`);
    const reopened = new FileGreylistStore(path, { sweepIntervalMs: 0 });
    assert.ok(reopened.skippedLines <= 1, `at most the torn last line is skipped (${reopened.skippedLines})`);
    assert.ok((await reopened.countTriplets()) >= acked + 1);
    for (let i = 0; i <= acked; i += 97) {
      assert.equal((await reopened.getTriplet(`192.0.2.0/24|sender${i}@a.test|rcpt@b.test`))?.firstSeen, i);
    }
    await reopened.close();
  });

  it('skips a torn last line and keeps the rest', async () => {
    const path = join(await tmp(), 'journal.jsonl');
    const s = new FileGreylistStore(path, { sweepIntervalMs: 0 });
    await s.updateTriplet('a', () => rec(1));
    await s.updateTriplet('b', () => rec(2));
    await s.close();
    appendFileSync(path, '{"t":"triplet","k":"c","v":{"firstSe');
    const r = new FileGreylistStore(path, { sweepIntervalMs: 0 });
    assert.equal(r.skippedLines, 1);
    assert.deepEqual(await r.getTriplet('b'), rec(2));
    assert.equal(await r.getTriplet('c'), undefined);
    await r.close();
  });

  it('compacts while updates go on, losing none of them', async () => {
    const path = join(await tmp(), 'journal.jsonl');
    const s = new FileGreylistStore(path, { sweepIntervalMs: 0 });
    const want = new Map<string, number>();
    // 1,000 keys rewritten 12 times: the journal exceeds 3x the live entries and compaction starts
    // on its own; the updates keep coming while it writes its snapshot in slices.
    for (let round = 0; round < 12; round++) {
      for (let k = 0; k < 1000; k++) {
        const key = `k${k}`;
        await s.updateTriplet(key, (cur) => rec((cur?.passCount ?? 0) + 1));
        want.set(key, round + 1);
      }
    }
    await s.updateClient('192.0.2.0/24', () => ({ deliveries: 3, lastCountedAt: 1, lastSeen: 1 }));
    await s.addWhitelist({ kind: 'client', value: '198.51.100.0/24', comment: 'x', createdAt: 1 });
    await s.compact();
    await s.close();
    const lines = readFileSync(path, 'utf8').trim().split('\n').length;
    assert.ok(lines < 12_000, `the journal was compacted (${lines} lines)`);
    const r = new FileGreylistStore(path, { sweepIntervalMs: 0 });
    assert.equal(await r.countTriplets(), 1000);
    for (const [key, n] of want) assert.equal((await r.getTriplet(key))?.passCount, n, key);
    assert.equal((await r.getClient('192.0.2.0/24'))?.deliveries, 3);
    assert.equal((await r.listWhitelist()).length, 1);
    await r.close();
  });

  it('sweeps expired triplets and clients in bounded slices', async () => {
    let now = 10_000;
    const s = new FileGreylistStore(join(await tmp(), 'j.jsonl'), {
      expirySeconds: 100,
      now: () => now,
      sweepIntervalMs: 0,
    });
    for (let i = 0; i < 50; i++) await s.updateTriplet(`old${i}`, () => rec(now));
    await s.updateClient('old-client', () => ({ deliveries: 1, lastCountedAt: now, lastSeen: now }));
    now += 200;
    await s.updateTriplet('fresh', () => rec(now));
    assert.equal(s.sweep(10), 10, 'a slice visits at most maxVisits entries');
    s.sweep();
    assert.equal(await s.countTriplets(), 1);
    assert.equal(await s.getClient('old-client'), undefined);
    await s.close();
  });
});
