import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '@smtpguard/config';
import { Greylister } from './greylister.js';
import { FileTripletStore } from './store/file-store.js';

async function setup(yaml = '') {
  const dir = await mkdtemp(join(tmpdir(), 'sg-grey-'));
  const store = new FileTripletStore(join(dir, 't.jsonl'));
  const settings = parseConfig(yaml).greylist;
  let now = 1_000_000;
  const g = new Greylister(
    store,
    () => settings,
    () => now,
  );
  return { g, store, dir, advance: (s: number) => (now += s) };
}

const msg = {
  clientIp: '192.0.2.10',
  sender: 'a@remote.test',
  recipient: 'alice@example.test',
  authenticated: false,
  trusted: false,
};

describe('Greylister', () => {
  it('defers a new triplet, defers an early retry with the seconds left, passes after the delay', async () => {
    const { g, advance } = await setup();
    const first = await g.check(msg);
    assert.equal(first.action, 'defer');
    assert.equal(first.reasonCode, 'greylist.new');
    assert.equal(first.retryAfterSeconds, 300);
    advance(100);
    const early = await g.check(msg);
    assert.deepEqual(
      [early.action, early.reasonCode, early.retryAfterSeconds],
      ['defer', 'greylist.early_retry', 200],
    );
    advance(200);
    const ok = await g.check(msg);
    assert.deepEqual([ok.action, ok.reasonCode, ok.delayedSeconds], ['pass', 'greylist.passed', 300]);
    advance(3600);
    assert.equal((await g.check(msg)).action, 'pass');
  });

  it('treats another host of the same /24 as the same client', async () => {
    const { g, advance } = await setup();
    await g.check(msg);
    advance(300);
    assert.equal((await g.check({ ...msg, clientIp: '192.0.2.200' })).action, 'pass');
  });

  it('restarts the clock when the first retry comes after the retry window', async () => {
    const { g, advance } = await setup();
    await g.check(msg);
    advance(2 * 24 * 3600 + 1);
    assert.equal((await g.check(msg)).reasonCode, 'greylist.new');
  });

  it('forgets entries unseen for the expiry period', async () => {
    const { g, advance } = await setup('greylist: { expirySeconds: 1000 }');
    await g.check(msg);
    advance(300);
    assert.equal((await g.check(msg)).action, 'pass');
    advance(1001);
    assert.equal((await g.check(msg)).reasonCode, 'greylist.new');
  });

  it('never greylists authenticated or trusted sessions, nor postmaster', async () => {
    const { g } = await setup();
    assert.equal(
      (await g.check({ ...msg, authenticated: true })).reasonCode,
      'greylist.skipped_authenticated',
    );
    assert.equal((await g.check({ ...msg, trusted: true })).reasonCode, 'greylist.skipped_authenticated');
    const pm = await g.check({ ...msg, recipient: 'Postmaster@example.test' });
    assert.deepEqual(
      [pm.action, pm.reasonCode, pm.rule],
      ['pass', 'greylist.whitelisted', 'recipient:postmaster'],
    );
  });

  it('keys on the sender domain when SPF authorizes the client (sender IP pools)', async () => {
    const { g, advance } = await setup();
    await g.check({ ...msg, clientIp: '198.51.100.1', spfPassDomain: 'remote.test' });
    advance(300);
    const other = await g.check({ ...msg, clientIp: '203.0.113.9', spfPassDomain: 'remote.test' });
    assert.equal(other.action, 'pass');
  });

  it('keeps triplets across a restart of the file store', async () => {
    const { g, store, dir, advance } = await setup();
    await g.check(msg);
    await store.close();
    const reopened = new FileTripletStore(join(dir, 't.jsonl'));
    assert.equal(await reopened.count(), 1);
    let now = 1_000_000;
    const g2 = new Greylister(
      reopened,
      () => parseConfig('').greylist,
      () => now,
    );
    now += 300;
    advance(0);
    assert.equal((await g2.check(msg)).action, 'pass');
    void g;
  });
});
