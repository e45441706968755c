import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '@smtpguard/config';
import { type CheckInput, Greylister } from './greylister.js';
import { FileGreylistStore } from './store/file-store.js';

async function setup(yaml = '') {
  const dir = await mkdtemp(join(tmpdir(), 'sg-grey-'));
  const path = join(dir, 't.jsonl');
  let now = 1_000_000;
  const clock = () => now;
  const store = new FileGreylistStore(path, { now: clock, sweepIntervalMs: 0 });
  const settings = parseConfig(yaml).greylist;
  const g = new Greylister(store, () => settings, clock);
  return { g, store, path, settings, clock, advance: (s: number) => (now += s) };
}

const msg: CheckInput = {
  clientIp: '192.0.2.10',
  sender: 'a@remote.test',
  recipient: 'alice@example.test',
  authenticated: false,
  trusted: false,
};

describe('Greylister: postgrey semantics', () => {
  it('defers a new triplet, defers an early retry with the seconds left, passes after the delay', async () => {
    const { g, advance } = await setup();
    const first = await g.check(msg);
    assert.deepEqual(
      [first.action, first.reasonCode, first.retryAfterSeconds],
      ['defer', 'greylist.new', 300],
    );
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
    const again = await g.check(msg);
    assert.deepEqual([again.action, again.delayedSeconds], ['pass', 0]);
  });

  it('treats another host of the same /24 as the same client, and /32 keys on the host', async () => {
    const a = await setup();
    await a.g.check(msg);
    a.advance(300);
    assert.equal((await a.g.check({ ...msg, clientIp: '192.0.2.200' })).action, 'pass');
    const b = await setup('greylist: { ipv4Prefix: 32 }');
    await b.g.check(msg);
    b.advance(300);
    assert.equal((await b.g.check({ ...msg, clientIp: '192.0.2.200' })).reasonCode, 'greylist.new');
  });

  it('normalizes per-message senders into one triplet', async () => {
    const { g, advance } = await setup();
    await g.check({ ...msg, sender: 'bounce-1234@lists.test' });
    advance(300);
    assert.equal((await g.check({ ...msg, sender: 'Bounce-9876@LISTS.test' })).action, 'pass');
    await g.check({ ...msg, sender: 'prvs=abc123=news@shop.test' });
    advance(300);
    assert.equal((await g.check({ ...msg, sender: 'prvs=zzz999=news@shop.test' })).action, 'pass');
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
});

describe('Greylister: whitelists and scope', () => {
  it('never greylists authenticated or trusted sessions', async () => {
    const { g } = await setup();
    assert.equal(
      (await g.check({ ...msg, authenticated: true })).reasonCode,
      'greylist.skipped_authenticated',
    );
    assert.equal((await g.check({ ...msg, trusted: true })).reasonCode, 'greylist.skipped_authenticated');
  });

  it('whitelists recipients (postmaster by default, full address, @domain)', async () => {
    const { g } = await setup(
      'greylist: { whitelistRecipients: [postmaster, vip@example.test, "@partner.test"] }',
    );
    const pm = await g.check({ ...msg, recipient: 'Postmaster@example.test' });
    assert.deepEqual(
      [pm.action, pm.reasonCode, pm.rule],
      ['pass', 'greylist.whitelisted', 'recipient:postmaster'],
    );
    assert.equal(
      (await g.check({ ...msg, recipient: 'vip@example.test' })).rule,
      'recipient:vip@example.test',
    );
    assert.equal((await g.check({ ...msg, recipient: 'x@partner.test' })).rule, 'recipient:@partner.test');
    assert.equal((await g.check({ ...msg, recipient: 'x@notpartner.test' })).reasonCode, 'greylist.new');
  });

  it('whitelists clients by IP, CIDR, range, host name and domain (verified reverse DNS)', async () => {
    const { g } = await setup(
      'greylist: { whitelistClients: [198.51.100.7, 203.0.113.0/25, 192.168.0.1-50, .outbound.test, mx.friend.test] }',
    );
    assert.equal((await g.check({ ...msg, clientIp: '198.51.100.7' })).rule, 'client:198.51.100.7');
    assert.equal((await g.check({ ...msg, clientIp: '203.0.113.99' })).rule, 'client:203.0.113.0/25');
    assert.equal((await g.check({ ...msg, clientIp: '192.168.0.50' })).rule, 'client:192.168.0.1-50');
    assert.equal(
      (await g.check({ ...msg, clientHostname: 'a1.eu.outbound.test' })).rule,
      'client:.outbound.test',
    );
    assert.equal((await g.check({ ...msg, clientHostname: 'mx.friend.test' })).rule, 'client:mx.friend.test');
    assert.equal((await g.check({ ...msg, clientIp: '192.168.0.51' })).reasonCode, 'greylist.new');
  });

  it('whitelists clients added by the administrator at run time', async () => {
    const { g, store } = await setup();
    assert.equal((await g.check({ ...msg, clientIp: '198.51.100.9' })).reasonCode, 'greylist.new');
    await store.addWhitelist({ kind: 'client', value: '198.51.100.0/24', comment: 'partner', createdAt: 1 });
    g.invalidate();
    assert.equal((await g.check({ ...msg, clientIp: '198.51.100.9' })).rule, 'client:198.51.100.0/24');
  });

  it('skips DNSWL-listed clients when configured', async () => {
    const on = await setup();
    assert.equal((await on.g.check({ ...msg, dnswlListed: true })).rule, 'dnswl');
    const off = await setup('greylist: { skipDnswl: false }');
    assert.equal((await off.g.check({ ...msg, dnswlListed: true })).reasonCode, 'greylist.new');
  });

  it('applies scope: server default, domain on/off/force, mailbox on/off', async () => {
    const { g } = await setup(`
greylist:
  scope:
    default: off
    domains: { forced.test: force, on.test: on }
    mailboxes: { optin@example.test: on, optout@on.test: off, optout@forced.test: off }
`);
    const r = (recipient: string) => g.check({ ...msg, recipient }).then((x) => x.reasonCode);
    assert.equal(await r('alice@example.test'), 'greylist.disabled_for_recipient');
    assert.equal(await r('optin@example.test'), 'greylist.new');
    assert.equal(await r('bob@on.test'), 'greylist.new');
    assert.equal(await r('optout@on.test'), 'greylist.disabled_for_recipient');
    assert.equal(await r('optout@forced.test'), 'greylist.new');
  });
});

describe('Greylister: sender pools and auto-whitelist', () => {
  it('keys on the sender domain when SPF authorizes the client', async () => {
    const { g, advance } = await setup();
    const first = await g.check({ ...msg, clientIp: '198.51.100.1', spfPassDomain: 'remote.test' });
    assert.equal(first.client, 'spf:remote.test');
    advance(300);
    const other = await g.check({ ...msg, clientIp: '203.0.113.9', spfPassDomain: 'remote.test' });
    assert.equal(other.action, 'pass');
  });

  it('auto-whitelists a client after 5 deliveries counted at most once per hour', async () => {
    const { g, store, advance } = await setup();
    const deliver = async (i: number) => {
      const m = { ...msg, recipient: `user${i}@example.test` };
      await g.check(m);
      advance(300);
      return g.check(m);
    };
    for (let i = 0; i < 5; i++) assert.equal((await deliver(i)).reasonCode, 'greylist.passed');
    // Five passes within 25 minutes count once.
    assert.equal((await store.getClient('192.0.2.0/24'))?.deliveries, 1);
    for (let i = 5; i < 9; i++) {
      advance(3600);
      assert.equal((await deliver(i)).reasonCode, 'greylist.passed');
    }
    assert.equal((await store.getClient('192.0.2.0/24'))?.deliveries, 5);
    const fresh = await g.check({ ...msg, sender: 'new@remote.test', recipient: 'new@example.test' });
    assert.deepEqual([fresh.action, fresh.reasonCode], ['pass', 'greylist.auto_whitelisted']);
  });

  it('keeps triplets and counts across a restart of the file store', async () => {
    const { g, store, path, settings, advance, clock } = await setup();
    await g.check(msg);
    await store.close();
    advance(300);
    const reopened = new FileGreylistStore(path, { now: clock, sweepIntervalMs: 0 });
    assert.equal(await reopened.countTriplets(), 1);
    assert.equal((await new Greylister(reopened, () => settings, clock).check(msg)).action, 'pass');
    await reopened.close();
  });
});
