import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '@smtpguard/config';
import { FileKvStore } from '@smtpguard/kv-store';
import { Directory } from '../directory.js';
import { type FailureCounter, Lockout } from './lockout.js';
import { type LoginEntry, PopLogins } from './pop-logins.js';
import { SendingQuota, type Usage } from './sending-quota.js';

async function store(now: () => number) {
  return new FileKvStore(join(await mkdtemp(join(tmpdir(), 'sg-auth-')), 'state.jsonl'), now);
}

describe('Lockout', () => {
  it('locks an account at the threshold, for lockoutSeconds, and a success clears it', async () => {
    let now = 1_000_000;
    const s = await store(() => now);
    const cfg = parseConfig(
      'auth: { lockout: { accountThreshold: 3, clientThreshold: 5, allowlist: [192.0.2.0/24] } }',
    ).auth.lockout;
    const l = new Lockout(
      await s.bucket<FailureCounter>('lockout', { maxAgeSeconds: 0 }),
      () => cfg,
      () => now,
    );
    await l.fail('alice@example.test', '198.51.100.1');
    await l.succeed('alice@example.test');
    for (let i = 0; i < 2; i++) await l.fail('alice@example.test', '198.51.100.1');
    assert.equal(await l.locked('alice@example.test', '198.51.100.1'), undefined);
    const after = await l.fail('Alice@example.test', '198.51.100.1');
    assert.equal(after.account?.failures, 3);
    const lock = await l.locked('alice@example.test', '203.0.113.9');
    assert.equal(lock?.kind, 'account');
    assert.equal(lock?.lockedUntil, now + 900_000);
    // Refused attempts while locked do not count (and do not extend the lock).
    await l.fail('alice@example.test', '203.0.113.9');
    assert.equal((await l.counter('account', 'alice@example.test'))?.failures, 3);
    now += 900_000;
    assert.equal(await l.locked('alice@example.test', '203.0.113.9'), undefined);
    // Allowlisted IPs are never counted.
    for (let i = 0; i < 10; i++) await l.fail('', '192.0.2.7');
    assert.equal(await l.locked('', '192.0.2.7'), undefined);
    assert.equal(await l.counter('client', '192.0.2.7'), undefined);
    assert.equal(await l.clear(undefined, '198.51.100.1'), 1);
    await s.close();
  });

  it('locks a client IP over many accounts, and forgets failures older than the window', async () => {
    let now = 5_000_000;
    const s = await store(() => now);
    const cfg = parseConfig('auth: { lockout: { clientThreshold: 3, windowSeconds: 60 } }').auth.lockout;
    const l = new Lockout(
      await s.bucket<FailureCounter>('lockout', { maxAgeSeconds: 0 }),
      () => cfg,
      () => now,
    );
    await l.fail('', '::ffff:198.51.100.2');
    await l.fail('', '198.51.100.2');
    now += 61_000;
    await l.fail('', '198.51.100.2');
    assert.equal(await l.locked('', '198.51.100.2'), undefined, 'the first two are outside the window');
    await l.fail('', '198.51.100.2');
    await l.fail('', '198.51.100.2');
    assert.equal((await l.locked('bob@example.test', '198.51.100.2'))?.kind, 'client');
    await s.close();
  });
});

describe('PopLogins', () => {
  it('authorizes the IP for the window, by setting only for the account’s senders', async () => {
    let now = 10_000_000;
    const s = await store(() => now);
    let cfg = parseConfig('auth: { popBeforeSmtp: { enabled: true, windowSeconds: 600 } }').auth
      .popBeforeSmtp;
    const p = new PopLogins(
      await s.bucket<LoginEntry>('logins', { maxAgeSeconds: 600 }),
      () => cfg,
      () => now,
    );
    const maySend = (a: string, sender: string) => a === sender;
    assert.equal((await p.check('127.0.0.5', 'alice@example.test', maySend)).reasonCode, 'pop.no_entry');
    await p.record('Alice@example.test', '127.0.0.5');
    const ok = await p.check('127.0.0.5', 'alice@example.test', maySend);
    assert.deepEqual([ok.authorized, ok.account, ok.expiresAt], [true, 'alice@example.test', now + 600_000]);
    const other = await p.check('127.0.0.5', 'ceo@example.test', maySend);
    assert.deepEqual([other.authorized, other.reasonCode], [false, 'pop.sender_mismatch']);
    cfg = { ...cfg, sendersOfAccountOnly: false };
    assert.equal((await p.check('127.0.0.5', 'ceo@example.test', maySend)).authorized, true);
    now += 600_000;
    assert.equal((await p.check('127.0.0.5', 'alice@example.test', maySend)).reasonCode, 'pop.no_entry');
    await s.close();
  });
});

describe('SendingQuota', () => {
  it('counts messages and recipients per hour and refuses over the limit without counting', async () => {
    let now = 20_000_000;
    const s = await store(() => now);
    const q = new SendingQuota(await s.bucket<Usage>('sending', { maxAgeSeconds: 7200 }), () => now);
    const limits = { messagesPerHour: 2, recipientsPerHour: 3, source: 'mailbox/mailbox' };
    assert.equal((await q.consume('a@x.test', 1, 0, limits)).allowed, true);
    assert.equal((await q.consume('a@x.test', 1, 0, limits)).allowed, true);
    const over = await q.consume('A@x.test', 1, 0, limits);
    assert.deepEqual(
      [over.allowed, over.reasonCode, over.usage.messages],
      [false, 'quota.messages_exceeded', 2],
    );
    for (let i = 0; i < 3; i++) assert.equal((await q.consume('a@x.test', 0, 1, limits)).allowed, true);
    assert.equal((await q.consume('a@x.test', 0, 1, limits)).reasonCode, 'quota.recipients_exceeded');
    now += 3600_000;
    assert.equal((await q.consume('a@x.test', 1, 0, limits)).usage.messages, 1, 'a new hour starts over');
    assert.equal(await q.reset('a@x.test'), true);
    assert.equal((await q.usage('a@x.test')).messages, 0);
    await s.close();
  });
});

describe('Directory sender policy', () => {
  const HASH = 'scrypt$N=16384,r=8,p=1$AAAA$AAAA';
  const cfg = parseConfig(`
auth:
  remoteSending: perDomain
  sendingLimits: { messagesPerHour: 100 }
  localSenders: { refusal: temporary }
  domains:
    - name: example.test
      sendingLimits: { messagesPerHour: 50, recipientsPerHour: 500 }
      localSenders: { allowedIps: [192.0.2.0/24], message: "Use the submission port" }
      mailboxes:
        - { address: alice@example.test, passwordHash: "${HASH}", sendAs: ["ceo@example.test"], sendingLimits: { messagesPerHour: 5 } }
        - { address: bob@example.test, passwordHash: "${HASH}", localOnly: true }
      aliases:
        info: [alice]
    - name: closed.test
      remoteSending: localOnly
      mailboxes: [{ address: carol@closed.test, passwordHash: "${HASH}" }]
`).auth;
  const dir = new Directory(cfg.domains, cfg);
  it('owns its address, aliases that reach it and sendAs entries', () => {
    assert.equal(dir.maySend('alice@example.test', 'alice@example.test'), true);
    assert.equal(dir.maySend('alice@example.test', 'info@example.test'), true);
    assert.equal(dir.maySend('alice@example.test', 'ceo@example.test'), true);
    assert.equal(dir.maySend('bob@example.test', 'alice@example.test'), false);
    assert.equal(dir.maySend('bob@example.test', 'ceo@other.test'), false);
  });
  it('resolves the sender with the domain’s local-sender policy and allowed IPs', () => {
    const r = dir.resolveSender('Alice@example.test', '', '192.0.2.9');
    assert.deepEqual(
      [
        r.domainLocal,
        r.addressKnown,
        r.ownerAccount,
        r.authorizationRequired,
        r.refusalTemporary,
        r.refusalMessage,
        r.allowedIpRule,
      ],
      [true, true, 'alice@example.test', true, true, 'Use the submission port', '192.0.2.0/24'],
    );
    assert.equal(dir.resolveSender('info@example.test', '', '').ownerAccount, 'alice@example.test');
    assert.equal(dir.resolveSender('nobody@example.test', '', '').reasonCode, 'relay.denied.sender_unknown');
    assert.equal(dir.resolveSender('x@remote.test', '', '').domainLocal, false);
  });
  it('applies the sender policy in MailEnable’s order and the limits mailbox > domain > global', () => {
    assert.equal(dir.localOnly('alice@example.test'), false);
    assert.equal(dir.localOnly('bob@example.test'), true);
    assert.equal(dir.localOnly('carol@closed.test'), true);
    assert.deepEqual(dir.sendingLimits('alice@example.test'), {
      messagesPerHour: 5,
      recipientsPerHour: 500,
      source: 'mailbox/domain',
    });
    assert.deepEqual(dir.sendingLimits('carol@closed.test'), {
      messagesPerHour: 100,
      recipientsPerHour: 0,
      source: 'global/global',
    });
    const all = new Directory(cfg.domains, { ...cfg, remoteSending: 'localOnly' });
    assert.equal(all.localOnly('alice@example.test'), true);
  });
});
