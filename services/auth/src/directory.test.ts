import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '@smtpguard/config';
import { auth } from '@smtpguard/contracts';
import { Directory } from './directory.js';

const HASH = 'scrypt$N=16384,r=8,p=1$AAAA$AAAA';
const cfg = parseConfig(`
auth:
  domains:
    - name: Example.test
      mailboxes:
        - { address: alice@example.test, passwordHash: "${HASH}" }
        - { address: bob@example.test, passwordHash: "${HASH}", disabled: true }
      aliases:
        sales: [alice@example.test, partner@remote.test]
        loop1: [loop2@example.test]
        loop2: [loop1@example.test]
        dangling: [nobody@example.test]
    - name: catch.test
      catchAll: alice@example.test
    - name: off.test
      disabled: true
`);
const dir = new Directory(cfg.auth.domains);
const S = auth.RecipientStatus;

describe('Directory.resolveRecipient', () => {
  const cases: Array<[string, auth.RecipientStatus, string, string[]]> = [
    ['Alice@EXAMPLE.test', S.RECIPIENT_STATUS_MAILBOX, 'rcpt.local', ['alice@example.test']],
    ['bob@example.test', S.RECIPIENT_STATUS_MAILBOX_DISABLED, 'rcpt.mailbox_disabled', []],
    ['carol@example.test', S.RECIPIENT_STATUS_UNKNOWN_USER, 'rcpt.unknown_user', []],
    [
      'sales@example.test',
      S.RECIPIENT_STATUS_ALIAS,
      'rcpt.local',
      ['alice@example.test', 'partner@remote.test'],
    ],
    ['loop1@example.test', S.RECIPIENT_STATUS_ROUTING_LOOP, 'rcpt.routing_loop', []],
    ['dangling@example.test', S.RECIPIENT_STATUS_ROUTING_LOOP, 'rcpt.routing_loop', []],
    ['anyone@catch.test', S.RECIPIENT_STATUS_CATCH_ALL, 'rcpt.catch_all', ['alice@example.test']],
    ['x@off.test', S.RECIPIENT_STATUS_DOMAIN_DISABLED, 'rcpt.domain_disabled', []],
    ['x@remote.test', S.RECIPIENT_STATUS_NOT_LOCAL, 'rcpt.not_local', []],
  ];
  for (const [address, status, reason, delivery] of cases) {
    it(`${address} -> ${auth.recipientStatusToJSON(status)}`, () => {
      const r = dir.resolveRecipient(address);
      assert.equal(r.status, status);
      assert.equal(r.reasonCode, reason);
      assert.deepEqual(r.deliveryAddresses, delivery);
    });
  }
});

describe('Directory.accountState', () => {
  const A = auth.AccountState;
  it('tells whether an authenticated account may still send', () => {
    assert.equal(dir.accountState('Alice@example.test'), A.ACCOUNT_STATE_ACTIVE);
    assert.equal(dir.accountState('bob@example.test'), A.ACCOUNT_STATE_DISABLED);
    assert.equal(dir.accountState('gone@example.test'), A.ACCOUNT_STATE_UNKNOWN);
  });
  it('refuses a mailbox of a disabled domain', () => {
    const off = new Directory(
      parseConfig(`
auth:
  domains:
    - name: off.test
      disabled: true
      mailboxes: [{ address: carol@off.test, passwordHash: "${HASH}" }]
`).auth.domains,
    );
    assert.equal(off.accountState('carol@off.test'), A.ACCOUNT_STATE_DOMAIN_DISABLED);
  });
});

describe('Directory: aliases, lists, block lists, routes', () => {
  const d = parseConfig(`
auth:
  relayDomains:
    - { name: backup.test, recipients: [known@backup.test] }
    - { name: any.test }
  domains:
    - name: example.test
      blockedSenderDomains: [spam.test]
      mailboxes:
        - { address: alice@example.test, passwordHash: "${HASH}" }
        - { address: carol@example.test, passwordHash: "${HASH}" }
      aliases:
        short: [alice]
        off: { targets: [alice], disabled: true }
        selfloop: [selfloop]
      lists:
        team: { members: [alice, carol@example.test, partner@remote.test] }
        closed: { members: [alice], disabled: true }
        members-only: { members: [alice@example.test], post: members }
        auth-only: { members: [alice], post: authenticated }
        board: { members: [alice], post: senders, senders: ["@partner.test"] }
`).auth;
  const dir = new Directory(d.domains, d);
  const r = (a: string, sender = '', account = '') => dir.resolveRecipient(a, { sender, account });
  it('resolves a bare local part in the alias’s own domain and detects its loop', () => {
    assert.deepEqual(r('short@example.test').deliveryAddresses, ['alice@example.test']);
    assert.equal(r('selfloop@example.test').status, S.RECIPIENT_STATUS_ROUTING_LOOP);
  });
  it('refuses disabled aliases and lists, and who may not post', () => {
    assert.equal(r('off@example.test').reasonCode, 'rcpt.alias_disabled');
    assert.equal(r('closed@example.test').reasonCode, 'rcpt.list_disabled');
    assert.deepEqual(r('team@example.test').deliveryAddresses, [
      'alice@example.test',
      'carol@example.test',
      'partner@remote.test',
    ]);
    assert.equal(r('members-only@example.test', 'x@remote.test').reasonCode, 'rcpt.list_not_authorized');
    assert.equal(r('members-only@example.test', 'alice@example.test').reasonCode, 'rcpt.local');
    assert.equal(r('auth-only@example.test', 'alice@example.test').reasonCode, 'rcpt.list_not_authorized');
    assert.equal(r('auth-only@example.test', 'x@y.test', 'alice@example.test').reasonCode, 'rcpt.local');
    assert.equal(r('board@example.test', 'ceo@partner.test').reasonCode, 'rcpt.local');
    assert.equal(r('board@example.test', 'ceo@other.test').reasonCode, 'rcpt.list_not_authorized');
  });
  it('blocks sender domains per recipient domain, and takes relay domains by route list', () => {
    assert.equal(r('alice@example.test', 'x@mail.spam.test').reasonCode, 'rcpt.sender_blocked');
    assert.equal(r('known@backup.test').reasonCode, 'rcpt.route');
    assert.equal(r('other@backup.test').reasonCode, 'rcpt.not_in_route_list');
    assert.equal(r('whoever@any.test').reasonCode, 'rcpt.route');
  });
});
