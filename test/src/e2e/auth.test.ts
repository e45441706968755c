// Who may send, end to end: local-sender authorization, sender ownership, unknown local senders, lockout (with the
// CLI), prevent-authentication, disabled domains, authzid, hourly limits (with the CLI), local-only sending, the
// directory's aliases, lists, sender block lists and route lists, trusted networks by mask, wildcard and verified
// host name, and the relay decision's sender criterion. Raw SMTP over TCP, exact replies, and for each refusal the
// decision with its reason code and filled-in detail. Each test talks from its own loopback address.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type CaptureServer, startCaptureServer, waitFor } from '@smtpguard/testing';
import { parse, stringify } from 'yaml';
import { type FileDecision, findDecision } from '../harness/decision-file.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { RawSmtp } from '../harness/raw-smtp.js';
import { unref, withoutRef } from '../harness/reference.js';
import { ALICE, startTestSystem, type TestSystem } from '../harness/system.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PASS = ALICE.pass;

let dns: DnsServer;
let hop: CaptureServer;
let sys: TestSystem;

before(async () => {
  dns = await startDnsServer({
    // 127.0.10.1 is relay.partner.test, forward-confirmed: matched by the host-name rule.
    '1.10.0.127.in-addr.arpa': { PTR: ['relay.partner.test'] },
    'relay.partner.test': { A: ['127.0.10.1'] },
    // 127.0.10.2 claims a partner name that does not resolve back: not trusted.
    '2.10.0.127.in-addr.arpa': { PTR: ['fake.partner.test'] },
  });
  hop = await startCaptureServer();
  sys = await startTestSystem({
    dnsServer: dns.address,
    nextHopPort: hop.port,
    override: (c) => {
      c.edge.checks.greylist = { enabled: false };
      c.edge.limits = { maxErrors: 10 };
      c.edge.trustedNetworks = ['127.0.8.0/255.255.255.0', '127.0.9.*', '*.partner.test'];
      c.reputation.dnsbl = { zones: [] };
      const hash = c.auth.domains[0].mailboxes[0].passwordHash;
      const mb = (address: string, more: object = {}) => ({ address, passwordHash: hash, ...more });
      c.auth.lockout = { accountThreshold: 5, clientThreshold: 12, windowSeconds: 600, lockoutSeconds: 600 };
      c.auth.domains = [
        {
          name: 'example.test',
          mailboxes: [
            mb(ALICE.user),
            mb('bob@example.test'),
            mb('victim@example.test'),
            mb('dave@example.test', { preventAuth: true }),
            mb('eve@example.test', { localOnly: true }),
            mb('frank@example.test', { sendingLimits: { messagesPerHour: 2, recipientsPerHour: 3 } }),
          ],
          aliases: {
            postmaster: [ALICE.user],
            info: ['alice'],
            off: { targets: ['alice'], disabled: true },
          },
          lists: {
            team: { members: ['alice', 'bob'] },
            closed: { members: ['alice'], disabled: true },
            staff: { members: ['alice', 'bob'], post: 'members' },
          },
          blockedSenderDomains: ['spam.test'],
        },
        {
          name: 'temp.test',
          mailboxes: [mb('sales@temp.test')],
          localSenders: {
            refusal: 'temporary',
            message: 'Sending as temp.test needs your password: use port 587',
            allowedIps: ['127.0.7.3'],
          },
        },
        {
          name: 'open.test',
          localSenders: { requireAuthorization: false },
          mailboxes: [mb('ian@open.test'), mb('hal@open.test', { disabled: true })],
        },
        { name: 'off.test', disabled: true, mailboxes: [mb('gina@off.test')] },
      ];
      c.auth.relayDomains = [{ name: 'backup.test', recipients: ['known@backup.test'] }];
    },
  });
});

after(async () => {
  await sys?.stop();
  await hop?.close();
  await dns?.close();
});

async function session(ip: string, port = sys.mxPort): Promise<RawSmtp> {
  const { c, greeting } = await RawSmtp.open(port, ip);
  assert.equal(greeting, '220 mx.example.test ESMTP smtpguard ready');
  assert.match(await c.cmd('EHLO client.example'), /^250-/);
  return c;
}

const plain = (user: string, pass: string, authzid = '') =>
  `AUTH PLAIN ${Buffer.from(`${authzid}\0${user}\0${pass}`).toString('base64')}`;

/** The decision for `ip` with `reason`; when `reply` is given, checked against what the client got. */
async function decision(ip: string, reason: string, reply?: string): Promise<FileDecision> {
  const d = await findDecision(
    sys.dir,
    (x) => x.reasonCode === reason && x.session?.clientIp === ip,
    `${reason} for ${ip}`,
  );
  if (reply)
    assert.equal(
      unref(`${d.reply?.code} ${d.reply?.enhancedCode} ${d.reply?.text}`),
      withoutRef(reply),
      reason,
    );
  return d;
}

function cli(...args: string[]): { status: number | null; stdout: string } {
  const r = spawnSync(
    process.execPath,
    [join(root, 'packages/cli/dist/main.js'), ...args, '--config', sys.configPath],
    { encoding: 'utf8', timeout: 20_000 },
  );
  return { status: r.status, stdout: r.stdout + r.stderr };
}

describe('a local sender must be authorized (GMS alert 8013)', () => {
  it('refuses an unauthenticated, untrusted local sender at MAIL, naming every way that failed', async () => {
    const ip = '127.0.7.1';
    const c = await session(ip);
    const reply = await c.cmd('MAIL FROM:<alice@example.test>');
    assert.equal(
      unref(reply),
      '550 5.7.1 Sender <alice@example.test> is in a local domain: authenticate before sending as it',
    );
    const d = await decision(ip, 'mail.local_sender_unauthorized', reply);
    assert.equal(d.phase, 'PHASE_MAIL');
    assert.match(
      d.detail ?? '',
      /127\.0\.7\.1 sent MAIL FROM:<alice@example\.test> \(the local domain example\.test\)/,
    );
    assert.match(d.detail ?? '', /no SMTP AUTH in session /);
    assert.match(d.detail ?? '', /127\.0\.7\.1 is not in edge\.trustedNetworks/);
    assert.match(d.detail ?? '', /example\.test has no allowed IPs/);
    assert.match(d.detail ?? '', /POP-before-SMTP is off/);
    // A remote sender is not concerned.
    assert.match(await c.cmd('MAIL FROM:<someone@sender.example>'), /^250 /);
    await c.quit();
  });

  it('refuses temporarily with the domain’s own words, and lets the domain’s allowed IP send', async () => {
    const c = await session('127.0.7.2');
    const reply = await c.cmd('MAIL FROM:<sales@temp.test>');
    assert.equal(unref(reply), '451 4.7.1 Sending as temp.test needs your password: use port 587');
    const d = await decision('127.0.7.2', 'mail.local_sender_unauthorized_temp', reply);
    assert.equal(d.outcome, 'OUTCOME_DEFER');
    await c.quit();
    const allowed = await session('127.0.7.3');
    assert.match(await allowed.cmd('MAIL FROM:<sales@temp.test>'), /^250 /);
    const ok = await decision('127.0.7.3', 'mail.sender_local');
    assert.match(ok.detail ?? '', /authorized: allowed IP of temp\.test \(127\.0\.7\.3\)/);
    await allowed.quit();
  });

  it('trusts clients by dotted mask, wildcard and verified host name, who may then relay', async () => {
    for (const [ip, rule] of [
      ['127.0.8.9', '127.0.8.0/255.255.255.0'],
      ['127.0.9.200', '127.0.9.*'],
    ] as const) {
      const c = await session(ip);
      assert.match(await c.cmd('MAIL FROM:<alice@example.test>'), /^250 /);
      assert.equal(
        unref(await c.cmd('RCPT TO:<friend@remote.example>')),
        '250 2.1.5 Recipient <friend@remote.example> OK',
      );
      assert.equal((await decision(ip, 'relay.granted.trusted_ip')).detail?.includes(rule), true);
      await c.quit();
    }
    const named = await session('127.0.10.1');
    assert.match(await named.cmd('MAIL FROM:<alice@example.test>'), /^250 /);
    const d = await decision('127.0.10.1', 'mail.trusted_host');
    assert.match(d.detail ?? '', /127\.0\.10\.1 is relay\.partner\.test .*matched \.partner\.test/);
    assert.match(await named.cmd('RCPT TO:<friend@remote.example>'), /^250 /);
    await named.quit();
    const fake = await session('127.0.10.2');
    assert.match(
      await fake.cmd('MAIL FROM:<alice@example.test>'),
      /^550 5\.7\.1 /,
      'a name that does not resolve back is not trusted',
    );
    await fake.quit();
  });
});

describe('senders', () => {
  it('an authenticated user may use only the addresses the directory gives them (551 5.7.1)', async () => {
    const ip = '127.0.7.4';
    const c = await session(ip);
    assert.equal(unref(await c.cmd(plain('bob@example.test', PASS))), '235 2.7.0 Authentication successful');
    const r1 = await c.cmd('MAIL FROM:<alice@example.test>');
    assert.equal(
      unref(r1),
      '551 5.7.1 Sender address <alice@example.test> is not valid for your login bob@example.test, check your email program settings',
    );
    const d = await decision(ip, 'mail.sender_not_owned', r1);
    assert.match(d.detail ?? '', /bob@example\.test \(authenticated\) sent MAIL FROM:<alice@example\.test>/);
    assert.match(
      await c.cmd('MAIL FROM:<ceo@other.test>'),
      /^551 5\.7\.1 Sender address <ceo@other\.test> is not valid/,
    );
    assert.match(await c.cmd('MAIL FROM:<bob@example.test>'), /^250 /);
    await c.quit();
    const a = await session('127.0.7.14');
    assert.equal(unref(await a.cmd(plain(ALICE.user, PASS))), '235 2.7.0 Authentication successful');
    assert.match(await a.cmd('MAIL FROM:<info@example.test>'), /^250 /, 'an alias that points to alice');
    await a.quit();
  });

  it('an unauthenticated sender whose local address does not exist or is disabled gets 551 (ME-E0109)', async () => {
    const ip = '127.0.7.5';
    const c = await session(ip);
    const r1 = await c.cmd('MAIL FROM:<nobody@open.test>');
    assert.equal(
      unref(r1),
      '551 5.7.1 User not local: <nobody@open.test> is not a valid sender here, authentication required for relaying',
    );
    const d = await decision(ip, 'relay.denied.sender_unknown', r1);
    assert.match(d.detail ?? '', /open\.test is local but the address does not exist/);
    assert.match(await c.cmd('MAIL FROM:<hal@open.test>'), /^551 5\.7\.1 User not local/);
    assert.match(await c.cmd('MAIL FROM:<ian@open.test>'), /^250 /);
    assert.equal(
      unref(await c.cmd('RCPT TO:<friend@remote.example>')),
      '550 5.7.1 Relaying denied: <friend@remote.example> is not local and you are not authorized to relay',
      'ME-I0106 is off by default',
    );
    await c.quit();
  });
});

describe('AUTH: lockout, prevent authentication, disabled domain, authzid', () => {
  it('locks an account after the threshold (504), counts toward the error limit, and the CLI lists and clears it', async () => {
    const ip = '127.0.7.6';
    const c = await session(ip);
    for (let i = 0; i < 5; i++)
      assert.equal(
        unref(await c.cmd(plain('victim@example.test', `wrong-${i}`))),
        '535 5.7.8 Authentication failed: user name or password is incorrect',
      );
    const locked = await c.cmd(plain('victim@example.test', PASS));
    assert.equal(
      unref(locked),
      '504 5.7.1 Access to this user account has been denied by the mail administrator',
    );
    const d = await decision(ip, 'auth.locked_out', locked);
    assert.match(
      d.detail ?? '',
      /victim@example\.test, which is locked after 5 failed logins; it may try again in \d+ s/,
    );
    // Failed AUTHs count toward edge.limits.maxErrors (10): six so far.
    for (let i = 0; i < 3; i++) assert.match(await c.cmd(plain('victim@example.test', 'x')), /^504 /);
    assert.match(await c.cmd(plain('victim@example.test', 'x')), /^504 5\.7\.1 /);
    assert.match(await c.read(), /^421 4\.7\.0 /, 'the tenth error ends the session');
    await c.closed;

    const list = cli('auth', 'lockouts', '--locked');
    assert.equal(list.status, 0, list.stdout);
    assert.match(list.stdout, /account\t5\t\S+\t\S+\tvictim@example\.test/);
    const cleared = cli('auth', 'lockouts', 'clear', 'victim@example.test', 'account');
    assert.equal(cleared.status, 0, cleared.stdout);
    const again = await session('127.0.7.16');
    assert.equal(
      unref(await again.cmd(plain('victim@example.test', PASS))),
      '235 2.7.0 Authentication successful',
    );
    await again.quit();
  });

  it('locks a client IP that tries many accounts, the right password included', async () => {
    const ip = '127.0.7.7';
    for (let round = 0; round < 2; round++) {
      const c = await session(ip);
      for (let i = 0; i < 6; i++)
        assert.match(await c.cmd(plain(`guess${round}${i}@example.test`, 'x')), /^535 /);
      await c.quit();
    }
    const c = await session(ip);
    const r = await c.cmd(plain(ALICE.user, PASS));
    assert.equal(unref(r), '504 5.7.1 Access to this user account has been denied by the mail administrator');
    const d = await decision(ip, 'auth.client_locked_out', r);
    assert.match(
      d.detail ?? '',
      /127\.0\.7\.7 tried to authenticate as alice@example\.test; the address is locked after 12 failed logins/,
    );
    await c.quit();
    assert.equal(cli('auth', 'lockouts', 'clear', ip).status, 0);
    const after = await session(ip);
    assert.equal(unref(await after.cmd(plain(ALICE.user, PASS))), '235 2.7.0 Authentication successful');
    await after.quit();
  });

  it('refuses a mailbox that may not authenticate, one of a disabled domain, and a foreign authzid', async () => {
    const ip = '127.0.7.8';
    const c = await session(ip);
    const denied = await c.cmd(plain('dave@example.test', PASS));
    assert.equal(
      unref(denied),
      '504 5.7.1 Access to this user account has been denied by the mail administrator',
    );
    await decision(ip, 'auth.denied', denied);
    const off = await c.cmd(plain('gina@off.test', PASS));
    assert.equal(unref(off), '504 5.7.1 User account has been disabled by the mail administrator');
    await decision(ip, 'auth.domain_disabled', off);
    const authz = await c.cmd(plain('bob@example.test', PASS, ALICE.user));
    assert.equal(unref(authz), '535 5.7.8 Authentication failed: acting as another user is not permitted');
    const d = await decision(ip, 'auth.authzid_refused', authz);
    assert.match(d.detail ?? '', /authenticated as bob@example\.test asking to act as alice@example\.test/);
    assert.equal(
      unref(await c.cmd(plain('bob@example.test', PASS, 'bob@example.test'))),
      '235 2.7.0 Authentication successful',
    );
    await c.quit();
  });
});

describe('sending limits and local-only sending', () => {
  it('answers 451 4.7.1 past the hourly recipients and messages; the CLI shows and resets the counters', async () => {
    const ip = '127.0.7.9';
    const c = await session(ip);
    assert.equal(
      unref(await c.cmd(plain('frank@example.test', PASS))),
      '235 2.7.0 Authentication successful',
    );
    assert.match(await c.cmd('MAIL FROM:<frank@example.test>'), /^250 /);
    for (const to of ['a1@remote.example', 'a2@remote.example', 'a3@remote.example'])
      assert.match(await c.cmd(`RCPT TO:<${to}>`), /^250 /);
    const r = await c.cmd('RCPT TO:<a4@remote.example>');
    assert.equal(
      unref(r),
      '451 4.7.1 This mail account has sent to too many recipients in a short amount of time, please try later',
    );
    const dr = await decision(ip, 'quota.recipients_exceeded', r);
    assert.match(dr.detail ?? '', /frank@example\.test has sent to 3 recipients this hour \(limit 3\)/);
    assert.equal(unref(await c.cmd('RSET')), '250 2.0.0 Reset OK');
    assert.match(await c.cmd('MAIL FROM:<frank@example.test>'), /^250 /);
    assert.equal(unref(await c.cmd('RSET')), '250 2.0.0 Reset OK');
    const m = await c.cmd('MAIL FROM:<frank@example.test>');
    assert.equal(
      unref(m),
      '451 4.7.1 This mail account has sent too many messages in a short amount of time, please try later',
    );
    const dm = await decision(ip, 'quota.messages_exceeded', m);
    assert.match(dm.detail ?? '', /frank@example\.test has sent 2 messages this hour \(limit 2\)/);

    const show = cli('auth', 'quota', 'show', 'frank@example.test');
    assert.equal(show.status, 0, show.stdout);
    assert.match(show.stdout, /messages this hour: 2 \(limit 2\)\nrecipients this hour: 3 \(limit 3\)/);
    assert.match(show.stdout, /limits from: mailbox\/mailbox/);
    assert.equal(cli('auth', 'quota', 'reset', 'frank@example.test').status, 0);
    assert.match(await c.cmd('MAIL FROM:<frank@example.test>'), /^250 /);
    await c.quit();
  });

  it('a local-only mailbox gets 452 for remote recipients and may send locally', async () => {
    const ip = '127.0.7.10';
    const c = await session(ip);
    assert.equal(unref(await c.cmd(plain('eve@example.test', PASS))), '235 2.7.0 Authentication successful');
    assert.match(await c.cmd('MAIL FROM:<eve@example.test>'), /^250 /);
    const r = await c.cmd('RCPT TO:<friend@remote.example>');
    assert.equal(unref(r), '452 4.7.1 You are not permitted to send to remote domains');
    const d = await decision(ip, 'rcpt.local_only', r);
    assert.match(
      d.detail ?? '',
      /eve@example\.test may only send to local domains \(sender policy: mailbox localOnly\)/,
    );
    assert.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
    await c.quit();
  });
});

describe('the directory', () => {
  it('refuses disabled aliases and lists, lists the sender may not post to, blocked sender domains, and route lists', async () => {
    const ip = '127.0.7.11';
    const c = await session(ip);
    assert.match(await c.cmd('MAIL FROM:<someone@sender.example>'), /^250 /);
    const cases: Array<[string, string, string]> = [
      ['off@example.test', 'rcpt.alias_disabled', '550 5.2.1 Alias <off@example.test> is not active'],
      [
        'closed@example.test',
        'rcpt.list_disabled',
        '550 5.2.1 Distribution list <closed@example.test> is not active',
      ],
      [
        'staff@example.test',
        'rcpt.list_not_authorized',
        '550 5.7.1 Not authorized to send to the list <staff@example.test>',
      ],
      [
        'other@backup.test',
        'rcpt.not_in_route_list',
        '550 5.1.1 Recipient <other@backup.test> not in route list',
      ],
    ];
    for (const [to, reason, reply] of cases) {
      assert.equal(unref(await c.cmd(`RCPT TO:<${to}>`)), reply);
      const d = await decision(ip, reason, reply);
      assert.equal(d.recipient, to);
    }
    for (const to of ['team@example.test', 'info@example.test', 'known@backup.test'])
      assert.match(await c.cmd(`RCPT TO:<${to}>`), /^250 /, to);
    await decision(ip, 'rcpt.route');
    assert.equal(unref(await c.cmd('RSET')), '250 2.0.0 Reset OK');
    assert.match(await c.cmd('MAIL FROM:<x@mail.spam.test>'), /^250 /);
    const blocked = await c.cmd('RCPT TO:<alice@example.test>');
    assert.equal(
      unref(blocked),
      '550 5.7.1 The domain you are sending from is not permitted to access this server',
    );
    const d = await decision(ip, 'rcpt.sender_blocked', blocked);
    assert.match(d.detail ?? '', /<x@mail\.spam\.test> may not send to <alice@example\.test>/);
    await c.quit();
  });
});

describe('the relay decision’s sender criterion (ME-I0106), applied when the config file changes', () => {
  it('lets a sender address that exists here relay without AUTH only with edge.relay.localSenders', async () => {
    const config = parse(await readFile(sys.configPath, 'utf8'));
    config.edge.relay = { localSenders: true };
    await writeFile(sys.configPath, stringify(config));
    const ip = '127.0.7.12';
    const granted = await waitFor('the edge to reload', async () => {
      const c = await session(ip);
      assert.match(await c.cmd('MAIL FROM:<ian@open.test>'), /^250 /);
      const r = await c.cmd('RCPT TO:<friend@remote.example>');
      await c.quit();
      if (r.startsWith('250 ')) return r;
      await sleep(100);
      return undefined;
    });
    assert.equal(granted, '250 2.1.5 Recipient <friend@remote.example> OK');
    const d = await decision(ip, 'relay.granted.local_sender');
    assert.match(d.detail ?? '', /<ian@open\.test> is in the local address map/);
  });
});
