// Protocol hygiene end to end: raw SMTP over TCP against the running system, exact replies (code, enhanced
// code, words from the catalog) and a decision with its reason code for every refusal. Each test talks from
// its own loopback address, so its decisions are found by client IP.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { type CaptureServer, smtpError, startCaptureServer, waitFor } from '@smtpguard/testing';
import { parse, stringify } from 'yaml';
import { type FileDecision, findDecision, readDecisions } from '../harness/decision-file.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { RawSmtp } from '../harness/raw-smtp.js';
import { unref, withoutRef } from '../harness/reference.js';
import { ALICE, startTestSystem, type TestSystem } from '../harness/system.js';

let dns: DnsServer;
let hop: CaptureServer;
let sys: TestSystem;
// bob has alice's password hash (so ALICE.pass), and is disabled during a test.
const BOB = { user: 'bob@example.test' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  dns = await startDnsServer({});
  hop = await startCaptureServer({
    refuseRecipient: (a) =>
      a.startsWith('gone@') ? { code: 550, message: '<gone@remote.example>: User unknown here' } : undefined,
    answer: (msg) =>
      msg.raw.includes('X-Refuse-Me: yes')
        ? smtpError(554, 'Message content rejected by next hop')
        : undefined,
  });
  sys = await startTestSystem({
    dnsServer: dns.address,
    nextHopPort: hop.port,
    override: (c) => {
      c.edge.checks.greylist = { enabled: false };
      c.edge.tls = { selfSigned: true };
      c.edge.maxMessageBytes = 300_000;
      c.edge.limits = { maxErrors: 8 };
      c.edge.timeouts = { commandMs: 2000, dataMs: 4000, minDataBytesPerSecond: 0 };
      c.auth.domains[0].mailboxes.push({
        address: BOB.user,
        passwordHash: c.auth.domains[0].mailboxes[0].passwordHash,
      });
    },
  });
});

after(async () => {
  await sys?.stop();
  await hop?.close();
  await dns?.close();
});

/** A session from `ip`, greeted and introduced. */
async function session(ip: string): Promise<RawSmtp> {
  const { c, greeting } = await RawSmtp.open(sys.mxPort, ip);
  assert.equal(greeting, '220 mx.example.test ESMTP smtpguard ready');
  assert.match(await c.cmd('EHLO client.example'), /^250-mx\.example\.test Hello client\.example \[/);
  return c;
}

/** The refusal decision for `ip` with `reason`, checked against the reply the client got. */
async function refusal(ip: string, reason: string, reply: string): Promise<FileDecision> {
  const d = await findDecision(
    sys.dir,
    (x) => x.reasonCode === reason && x.session?.clientIp === ip,
    `${reason} for ${ip}`,
  );
  assert.ok(d.session?.sessionId, 'the decision names the session');
  const [code, enhanced] = reply.split(' ');
  assert.equal(d.reply?.code, Number(code), `${reason}: reply code`);
  assert.equal(d.reply?.enhancedCode, enhanced, `${reason}: enhanced code`);
  assert.equal(unref(`${d.reply?.code} ${d.reply?.enhancedCode} ${d.reply?.text}`), withoutRef(reply));
  return d;
}

describe('replies owned by the edge', () => {
  it('greets, answers EHLO with its own words and offers only what it implements', async () => {
    const { c, greeting } = await RawSmtp.open(sys.mxPort, '127.0.0.20');
    assert.equal(greeting, '220 mx.example.test ESMTP smtpguard ready');
    const ehlo = await c.cmd('EHLO client.example');
    assert.deepEqual(ehlo.split('\r\n'), [
      '250-mx.example.test Hello client.example [127.0.0.20]',
      '250-PIPELINING',
      '250-8BITMIME',
      '250-SMTPUTF8',
      '250-ENHANCEDSTATUSCODES',
      '250-AUTH PLAIN LOGIN',
      '250-STARTTLS',
      '250 SIZE 300000',
    ]);
    assert.equal(unref(await c.cmd('NOOP')), '250 2.0.0 OK');
    assert.equal(unref(await c.cmd('RSET')), '250 2.0.0 Reset OK');
    assert.match(await c.cmd('HELP'), /^214 2\.0\.0 smtpguard speaks SMTP \(RFC 5321\); commands: HELO EHLO/);
    assert.equal(unref(await c.cmd('QUIT')), '221 2.0.0 mx.example.test closing connection');
    await c.closed;
  });

  it('refuses invalid HELO/EHLO arguments and address literals that are not the client (501 5.5.2, 550 5.7.1)', async () => {
    const ip = '127.0.0.21';
    const { c } = await RawSmtp.open(sys.mxPort, ip);
    const invalid = '501 5.5.2 EHLO requires a valid domain name or address literal';
    assert.equal(unref(await c.cmd('EHLO !!bad..domain')), invalid);
    assert.equal(unref(await c.cmd('EHLO')), invalid);
    assert.equal(
      unref(await c.cmd('HELO two words')),
      '501 5.5.2 HELO requires a valid domain name or address literal',
    );
    const d = await refusal(ip, 'helo.invalid', invalid);
    assert.equal(d.phase, 'PHASE_HELO');
    assert.match(d.detail ?? '', /sent EHLO "!!bad\.\.domain"/);
    const mismatch = '550 5.7.1 The address literal in EHLO does not match your address 127.0.0.21';
    assert.equal(unref(await c.cmd('EHLO [192.0.2.1]')), mismatch);
    await refusal(ip, 'helo.literal_mismatch', mismatch);
    // Accepted: its own literal, a bare IPv4 address, a Windows host name with an underscore.
    assert.match(await c.cmd('EHLO [127.0.0.21]'), /^250-mx\.example\.test Hello \[127\.0\.0\.21\]/);
    assert.match(await c.cmd('EHLO 127.0.0.21'), /^250-/);
    assert.equal(unref(await c.cmd('HELO my_pc')), '250 mx.example.test Hello my_pc [127.0.0.21]');
    await c.quit();
  });

  it('answers VRFY, EXPN, TURN, ETRN as disallowed, unimplemented SMTP commands 502, anything else 500', async () => {
    const ip = '127.0.0.22';
    const c = await session(ip);
    assert.equal(unref(await c.cmd('VRFY alice')), '502 5.5.1 VRFY disallowed');
    assert.equal(unref(await c.cmd('EXPN staff')), '502 5.5.1 EXPN disallowed');
    assert.equal(unref(await c.cmd('TURN')), '502 5.5.1 TURN disallowed');
    assert.equal(unref(await c.cmd('ETRN example.test')), '502 5.5.1 ETRN disallowed');
    assert.equal(unref(await c.cmd('SEND FROM:<x@y.z>')), '502 5.5.1 SEND: command not implemented');
    assert.equal(unref(await c.cmd('XCLIENT ADDR=1.2.3.4')), '502 5.5.1 XCLIENT: command not implemented');
    assert.equal(unref(await c.cmd('WIZ secret')), '500 5.5.2 Syntax error, command unrecognized');
    assert.equal(unref(await c.cmd('FOO bar')), '500 5.5.2 Syntax error, command unrecognized');
    await refusal(ip, 'protocol.command_disallowed', '502 5.5.1 VRFY disallowed');
    await refusal(ip, 'protocol.not_implemented', '502 5.5.1 SEND: command not implemented');
    const unknown = await refusal(
      ip,
      'protocol.unknown_command',
      '500 5.5.2 Syntax error, command unrecognized',
    );
    assert.equal(unknown.phase, 'PHASE_PROTOCOL');
    await c.quit();
  });

  it('answers commands out of sequence with 503 5.5.1', async () => {
    const ip = '127.0.0.23';
    const { c } = await RawSmtp.open(sys.mxPort, ip);
    assert.equal(unref(await c.cmd('MAIL FROM:<a@sender.example>')), '503 5.5.1 Send HELO/EHLO first');
    assert.match(await c.cmd('EHLO client.example'), /^250-/);
    assert.equal(
      unref(await c.cmd('RCPT TO:<alice@example.test>')),
      '503 5.5.1 Need MAIL FROM before RCPT TO',
    );
    assert.equal(unref(await c.cmd('DATA')), '503 5.5.1 Need RCPT TO before DATA');
    assert.equal(
      unref(await c.cmd('MAIL FROM:<a@sender.example>')),
      '250 2.1.0 Sender <a@sender.example> OK',
    );
    assert.equal(
      unref(await c.cmd('MAIL FROM:<a@sender.example>')),
      '503 5.5.1 Nested MAIL command: send RSET to start over',
    );
    await refusal(ip, 'protocol.helo_required', '503 5.5.1 Send HELO/EHLO first');
    await refusal(ip, 'rcpt.need_mail', '503 5.5.1 Need MAIL FROM before RCPT TO');
    await refusal(ip, 'data.need_rcpt', '503 5.5.1 Need RCPT TO before DATA');
    await refusal(ip, 'mail.nested', '503 5.5.1 Nested MAIL command: send RSET to start over');
    await c.quit();
  });

  it('refuses parameters of extensions it does not offer (555 5.5.4) and bad values (501, 552)', async () => {
    const ip = '127.0.0.24';
    const c = await session(ip);
    assert.equal(
      unref(await c.cmd('MAIL FROM:<a@sender.example> BOGUS=1')),
      '555 5.5.4 MAIL FROM parameter BOGUS is not supported',
    );
    assert.equal(
      unref(await c.cmd('MAIL FROM:<a@sender.example> RET=FULL')),
      '555 5.5.4 MAIL FROM parameter RET is not supported',
    );
    assert.equal(
      unref(await c.cmd('MAIL FROM:<a@sender.example> BODY=FOO')),
      '501 5.5.4 Invalid BODY parameter',
    );
    assert.equal(
      unref(await c.cmd('MAIL FROM:<a@sender.example> SIZE=999999999')),
      '552 5.3.4 Message size exceeds fixed maximum message size (300000 bytes)',
    );
    assert.equal(unref(await c.cmd('MAIL FROM:<not an address>')), '501 5.1.7 Bad sender address syntax');
    // SIZE, BODY, SMTPUTF8 and AUTH= are offered.
    assert.equal(
      unref(await c.cmd('MAIL FROM:<a@sender.example> SIZE=100 BODY=8BITMIME SMTPUTF8 AUTH=<>')),
      '250 2.1.0 Sender <a@sender.example> OK',
    );
    assert.equal(
      unref(await c.cmd('RCPT TO:<alice@example.test> NOTIFY=NEVER')),
      '555 5.5.4 RCPT TO parameter NOTIFY is not supported',
    );
    assert.equal(unref(await c.cmd('RCPT TO:<@@>')), '501 5.1.3 Bad recipient address syntax');
    await refusal(ip, 'mail.unknown_parameter', '555 5.5.4 MAIL FROM parameter BOGUS is not supported');
    await refusal(ip, 'rcpt.unknown_parameter', '555 5.5.4 RCPT TO parameter NOTIFY is not supported');
    const size = await refusal(
      ip,
      'mail.size_exceeded',
      '552 5.3.4 Message size exceeds fixed maximum message size (300000 bytes)',
    );
    assert.match(size.detail ?? '', /declared a message of 999999999 bytes/);
    await refusal(ip, 'protocol.bad_parameter', '501 5.5.4 Invalid BODY parameter');
    await refusal(ip, 'mail.bad_address', '501 5.1.7 Bad sender address syntax');
    await refusal(ip, 'rcpt.bad_address', '501 5.1.3 Bad recipient address syntax');
    await c.quit();
  });

  it('refuses a command line over 512 octets (500 5.5.2) and goes on; closes on a flood without line end (421)', async () => {
    const ip = '127.0.0.25';
    const c = await session(ip);
    assert.equal(
      unref(await c.cmd(`NOOP ${'x'.repeat(600)}`)),
      '500 5.5.2 Line too long (at most 512 octets)',
    );
    assert.equal(unref(await c.cmd('NOOP')), '250 2.0.0 OK');
    await refusal(ip, 'protocol.line_too_long', '500 5.5.2 Line too long (at most 512 octets)');
    c.write('X'.repeat(40_000));
    assert.equal(
      unref(await c.read()),
      '421 4.7.0 Excessive amount of data without a line end; closing connection',
    );
    await c.closed;
    await refusal(
      ip,
      'protocol.line_flood',
      '421 4.7.0 Excessive amount of data without a line end; closing connection',
    );
  });

  it('closes a session at the error threshold: stops harvesting recipients (421 4.7.0)', async () => {
    const ip = '127.0.0.26';
    const c = await session(ip);
    assert.match(await c.cmd('MAIL FROM:<harvester@sender.example>'), /^250 /);
    const replies: string[] = [];
    for (let i = 0; i < 7; i++) replies.push(await c.cmd(`RCPT TO:<user${i}@example.test>`));
    assert.ok(replies.every((r) => r.startsWith('550 5.1.1 Unknown user')));
    c.write('RCPT TO:<user7@example.test>\r\n');
    assert.match(await c.read(), /^550 5\.1\.1 /);
    assert.equal(unref(await c.read()), '421 4.7.0 Too many errors in this session; closing connection');
    await c.closed;
    const d = await refusal(
      ip,
      'protocol.too_many_errors',
      '421 4.7.0 Too many errors in this session; closing connection',
    );
    assert.match(d.detail ?? '', /collected 8 errors/);
  });

  it('times out an idle session and a trickled command (421 4.4.2)', async () => {
    const idle = await session('127.0.0.27');
    const t0 = Date.now();
    assert.equal(
      unref(await idle.read(4000)),
      '421 4.4.2 Timeout: no command for 2 seconds; closing connection',
    );
    assert.ok(Date.now() - t0 >= 1900);
    await idle.closed;
    await refusal(
      '127.0.0.27',
      'protocol.idle_timeout',
      '421 4.4.2 Timeout: no command for 2 seconds; closing connection',
    );

    const slow = await session('127.0.0.28');
    const t1 = Date.now();
    let i = 0;
    const drip = setInterval(() => slow.isOpen && slow.write('NOOP'[i++ % 4] as string), 200);
    try {
      assert.equal(
        unref(await slow.read(4000)),
        '421 4.4.2 Timeout: command not completed within 2 seconds; closing connection',
      );
    } finally {
      clearInterval(drip);
    }
    assert.ok(Date.now() - t1 < 3000, 'the trickled bytes did not extend the timeout');
    await refusal(
      '127.0.0.28',
      'protocol.command_timeout',
      '421 4.4.2 Timeout: command not completed within 2 seconds; closing connection',
    );
  });
});

/** Starts a transaction for alice and sends DATA; returns the session ready for the message. */
async function dataFor(ip: string, rcpts = ['alice@example.test']): Promise<RawSmtp> {
  const c = await session(ip);
  assert.match(await c.cmd('MAIL FROM:<sender@sender.example>'), /^250 /);
  for (const r of rcpts) assert.match(await c.cmd(`RCPT TO:<${r}>`), /^250 /);
  assert.equal(unref(await c.cmd('DATA')), '354 End data with <CR><LF>.<CR><LF>');
  return c;
}

const delivered = (token: string) => hop.messages.filter((m) => m.raw.includes(token)).length;

describe('message data', () => {
  it('refuses bare LF, bare CR and NUL (554 5.6.0) and delivers nothing of them', async () => {
    const cases: Array<[string, string, string]> = [
      ['127.0.0.30', 'Subject: lf\r\n\r\nline one\nline two\r\n', 'data.bare_lf'],
      ['127.0.0.31', 'Subject: cr\r\n\r\nline one\rline two\r\n', 'data.bare_cr'],
      ['127.0.0.32', 'Subject: nul\r\n\r\nline \u0000 one\r\n', 'data.nul'],
    ];
    for (const [ip, body, reason] of cases) {
      const c = await dataFor(ip);
      c.write(`X-Token: ${reason}\r\n${body}.\r\n`);
      const reply = await c.read();
      assert.match(reply, /^554 5\.6\.0 Message refused: it contains /, reason);
      await refusal(ip, reason, reply);
      assert.equal(unref(await c.cmd('NOOP')), '250 2.0.0 OK', 'the session goes on');
      await c.quit();
      assert.equal(delivered(reason), 0);
    }
  });

  it('ends DATA only at <CRLF>.<CRLF>: a smuggled second message is refused, not delivered', async () => {
    const ip = '127.0.0.33';
    const c = await dataFor(ip);
    c.write(
      'Subject: smuggle-outer\r\n\r\nhello\n.\r\nMAIL FROM:<ceo@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: smuggle-inner\r\n\r\nowned\r\n.\r\n',
    );
    assert.match(await c.read(), /^554 5\.6\.0 Message refused: it contains a bare LF/);
    assert.equal(unref(await c.cmd('NOOP')), '250 2.0.0 OK', 'nothing smuggled was taken as a command');
    await c.quit();
    assert.equal(delivered('smuggle-'), 0);
  });

  it('refuses a message line over 1000 octets (500 5.5.2) and too many Received headers (554 5.4.6)', async () => {
    const long = await dataFor('127.0.0.34');
    long.write(`Subject: long-line\r\n\r\n${'a'.repeat(1500)}\r\n.\r\n`);
    const r1 = await long.read();
    assert.equal(unref(r1), '500 5.5.2 Line too long: message lines may have at most 1000 octets');
    await refusal('127.0.0.34', 'data.line_too_long', r1);
    await long.quit();

    const loop = await dataFor('127.0.0.35');
    const received = Array.from(
      { length: 101 },
      (_, i) => `Received: from hop${i}.example by hop${i + 1}.example; x\r\n`,
    );
    loop.write(`${received.join('')}Subject: hop-loop\r\n\r\nbody\r\n.\r\n`);
    const r2 = await loop.read();
    assert.equal(unref(r2), '554 5.4.6 Too many hops (101 Received headers): mail loop detected');
    await refusal('127.0.0.35', 'data.hop_count', r2);
    await loop.quit();
    assert.equal(delivered('long-line') + delivered('hop-loop'), 0);
  });

  it('refuses a message over the size limit (552 5.3.4) without keeping it', async () => {
    const ip = '127.0.0.36';
    const c = await dataFor(ip);
    const line = `${'b'.repeat(998)}\r\n`;
    c.write(`Subject: too-big\r\n\r\n${line.repeat(400)}.\r\n`);
    const reply = await c.read();
    assert.equal(unref(reply), '552 5.3.4 Message size exceeds fixed maximum message size (300000 bytes)');
    const d = await refusal(ip, 'data.size_exceeded', reply);
    assert.equal(d.phase, 'PHASE_DATA');
    await c.quit();
    assert.equal(delivered('too-big'), 0);
  });

  it('cuts off a message not finished within the DATA time limit (421 4.4.2)', async () => {
    const ip = '127.0.0.37';
    const c = await dataFor(ip);
    c.write('Subject: slow-data\r\n\r\nstarted but never finished\r\n');
    const reply = await c.read(6000);
    assert.equal(
      unref(reply),
      '421 4.4.2 Timeout: message not received within 4 seconds; closing connection',
    );
    await c.closed;
    await refusal(ip, 'data.timeout', reply);
    assert.equal(delivered('slow-data'), 0);
  });
});

describe('the next hop as a before-queue proxy', () => {
  it("passes on the next hop's own answer per recipient: one refused, one accepted, delivered to the one", async () => {
    const ip = '127.0.0.40';
    const c = await session(ip);
    assert.equal(
      unref(await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${ALICE.user}\0${ALICE.pass}`).toString('base64')}`)),
      '235 2.7.0 Authentication successful',
    );
    assert.match(await c.cmd(`MAIL FROM:<${ALICE.user}>`), /^250 /);
    assert.equal(
      unref(await c.cmd('RCPT TO:<friend@remote.example>')),
      '250 2.1.5 Recipient <friend@remote.example> OK',
    );
    assert.equal(
      unref(await c.cmd('RCPT TO:<gone@remote.example>')),
      '550 5.1.1 <gone@remote.example>: User unknown here',
    );
    assert.equal(
      unref(await c.cmd('RCPT TO:<Friend@remote.example>')),
      '250 2.1.5 Recipient <Friend@remote.example> OK',
    );
    assert.equal(unref(await c.cmd('DATA')), '354 End data with <CR><LF>.<CR><LF>');
    c.write('Subject: proxy-partial\r\n\r\nfor the one the next hop takes\r\n.\r\n');
    assert.match(await c.read(), /^250 2\.0\.0 Ok: queued as [0-9A-F]{20}$/);
    await c.quit();
    const got = hop.messages.filter((m) => m.raw.includes('proxy-partial'));
    assert.equal(got.length, 1);
    assert.deepEqual(got[0]?.to, ['friend@remote.example'], 'once, without the refused one or the repeat');
    const d = await refusal(ip, 'rcpt.nexthop_refused', '550 5.1.1 <gone@remote.example>: User unknown here');
    assert.equal(d.recipient, 'gone@remote.example');
  });

  it("passes on the next hop's refusal of the whole message; nothing is delivered", async () => {
    const ip = '127.0.0.41';
    const c = await dataFor(ip);
    c.write('Subject: proxy-refused\r\nX-Refuse-Me: yes\r\n\r\nbody\r\n.\r\n');
    const reply = await c.read();
    // smtp-server (the capture next hop) adds 5.6.0 to its 554.
    assert.equal(unref(reply), '554 5.6.0 Message content rejected by next hop');
    const d = await refusal(ip, 'queue.nexthop_rejected', reply);
    assert.equal(d.phase, 'PHASE_QUEUE');
    await c.quit();
    assert.equal(delivered('proxy-refused'), 0);
  });
});

describe('STARTTLS and authentication', () => {
  it('forgets AUTH, HELO and the transaction at STARTTLS, and does not run commands pipelined behind it', async () => {
    const ip = '127.0.0.50';
    const c = await session(ip);
    assert.equal(
      unref(await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${ALICE.user}\0${ALICE.pass}`).toString('base64')}`)),
      '235 2.7.0 Authentication successful',
    );
    c.write('STARTTLS\r\nNOOP\r\n');
    assert.equal(unref(await c.read()), '220 2.0.0 Ready to start TLS');
    await c.startTls();
    // The pipelined NOOP was plaintext from before TLS: it must not be answered inside TLS.
    assert.equal(unref(await c.cmd('MAIL FROM:<alice@example.test>')), '503 5.5.1 Send HELO/EHLO first');
    assert.match(await c.cmd('EHLO client.example'), /^250-mx\.example\.test Hello/);
    assert.equal(
      unref(await c.cmd(`MAIL FROM:<${ALICE.user}>`)),
      '550 5.7.1 Sender <alice@example.test> is in a local domain: authenticate before sending as it',
      'the AUTH of before STARTTLS no longer authorizes the local sender',
    );
    assert.match(await c.cmd('MAIL FROM:<someone@sender.example>'), /^250 /);
    assert.equal(
      unref(await c.cmd('RCPT TO:<friend@remote.example>')),
      '550 5.7.1 Relaying denied: <friend@remote.example> is not local and you are not authorized to relay',
      'the AUTH of before STARTTLS no longer counts',
    );
    await c.quit();
  });

  it('refuses AUTH without a mechanism, twice, or inside a transaction', async () => {
    const ip = '127.0.0.51';
    const c = await session(ip);
    assert.equal(unref(await c.cmd('AUTH')), '504 5.5.4 Authentication type not specified');
    assert.equal(unref(await c.cmd('AUTH CRAM-MD5')), '504 5.5.4 Authentication mechanism not supported');
    assert.match(await c.cmd('MAIL FROM:<a@sender.example>'), /^250 /);
    assert.equal(unref(await c.cmd('AUTH PLAIN')), '503 5.5.1 AUTH is not allowed during a mail transaction');
    assert.equal(unref(await c.cmd('RSET')), '250 2.0.0 Reset OK');
    assert.equal(
      unref(await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${ALICE.user}\0${ALICE.pass}`).toString('base64')}`)),
      '235 2.7.0 Authentication successful',
    );
    assert.equal(unref(await c.cmd('AUTH PLAIN')), '503 5.5.1 Already authenticated');
    assert.equal(unref(await c.cmd('AUTH LOGIN')), '503 5.5.1 Already authenticated');
    await refusal(ip, 'auth.mechanism_missing', '504 5.5.4 Authentication type not specified');
    await refusal(ip, 'auth.in_transaction', '503 5.5.1 AUTH is not allowed during a mail transaction');
    await c.quit();
  });

  it('checks the account again before each transaction: disabled since login gets 550 5.7.8', async () => {
    const ip = '127.0.0.52';
    const { c } = await RawSmtp.open(sys.submissionPort, ip);
    assert.match(await c.cmd('EHLO client.example'), /^250-/);
    assert.equal(
      unref(await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${BOB.user}\0${ALICE.pass}`).toString('base64')}`)),
      '235 2.7.0 Authentication successful',
    );
    assert.match(await c.cmd(`MAIL FROM:<${BOB.user}>`), /^250 /);
    assert.equal(unref(await c.cmd('RSET')), '250 2.0.0 Reset OK');
    // The administrator disables bob while the session is open.
    const config = parse(await readFile(sys.configPath, 'utf8'));
    config.auth.domains[0].mailboxes[1].disabled = true;
    await writeFile(sys.configPath, stringify(config));
    const refused = await waitFor('the auth service to reload', async () => {
      const r = await c.cmd(`MAIL FROM:<${BOB.user}>`);
      if (r.startsWith('250 ')) {
        await c.cmd('RSET');
        await sleep(100);
        return undefined;
      }
      return r;
    });
    assert.equal(
      unref(refused),
      '550 5.7.8 Login credentials are no longer valid, please authenticate again',
    );
    const d = await refusal(ip, 'account.revoked', refused);
    assert.match(d.detail ?? '', /bob@example\.test authenticated earlier .* the account is now disabled/);
    // The session's authentication is gone: AUTH is possible again, and says why bob cannot.
    assert.equal(
      unref(await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${BOB.user}\0${ALICE.pass}`).toString('base64')}`)),
      '504 5.7.1 User account has been disabled by the mail administrator',
    );
    await c.quit();
  });
});

describe('settings, applied when the config file changes', () => {
  it('VRFY allowed (252), empty sender refused, FQDN required, bare line ends normalized, long lines accepted', async () => {
    const config = parse(await readFile(sys.configPath, 'utf8'));
    config.edge.protocol = {
      allowedCommands: ['HELO', 'EHLO', 'MAIL', 'RCPT', 'DATA', 'RSET', 'NOOP', 'QUIT', 'AUTH', 'VRFY'],
      emptySender: 'refuse',
      helo: { requireFqdn: true },
      bareLineEndings: 'normalize',
      longLines: 'accept',
    };
    await writeFile(sys.configPath, stringify(config));
    const ip = '127.0.0.55';
    const c = await waitFor('the edge to reload', async () => {
      const { c } = await RawSmtp.open(sys.mxPort, ip);
      const r = await c.cmd('VRFY alice');
      if (r.startsWith('252 ')) return c;
      await c.quit();
      await sleep(100);
      return undefined;
    });
    assert.equal(unref(await c.cmd('HELP')), '502 5.5.1 HELP disallowed');
    assert.equal(
      unref(await c.cmd('EHLO localhost')),
      '504 5.5.2 EHLO requires a fully qualified domain name',
    );
    await refusal(ip, 'helo.not_fqdn', '504 5.5.2 EHLO requires a fully qualified domain name');
    const ehlo = await c.cmd('EHLO client.example');
    assert.ok(!/STARTTLS/.test(ehlo), 'STARTTLS is not offered when not allowed');
    assert.equal(unref(await c.cmd('MAIL FROM:<>')), '550 5.1.7 Sender address must be specified');
    await refusal(ip, 'mail.empty_sender', '550 5.1.7 Sender address must be specified');
    assert.match(await c.cmd('MAIL FROM:<sender@sender.example>'), /^250 /);
    assert.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
    assert.equal(unref(await c.cmd('DATA')), '354 End data with <CR><LF>.<CR><LF>');
    c.write(`Subject: normalized\r\n\r\nbare\nlf\rcr\u0000nul\r\n${'L'.repeat(1500)}\r\n.\r\n`);
    assert.match(await c.read(), /^250 2\.0\.0 Ok: queued as /);
    await c.quit();
    const got = hop.messages.find((m) => m.raw.includes('Subject: normalized'));
    assert.ok(got);
    const body = got.raw.toString('latin1').split('\r\n\r\n').slice(1).join('\r\n\r\n');
    assert.equal(body, `bare\r\nlf\r\ncrnul\r\n${'L'.repeat(1500)}\r\n`);
  });
});

describe('every decision names its reason', () => {
  it('has written no decision with a reason outside the catalog, and no unmapped reply', async () => {
    const { REASON_CODES } = await import('@smtpguard/reasons');
    const known = new Set<string>(REASON_CODES);
    const all = await readDecisions(sys.dir);
    assert.ok(all.length > 50);
    assert.deepEqual(
      all.filter((d) => !known.has(d.reasonCode)).map((d) => d.reasonCode),
      [],
    );
    assert.deepEqual(
      all.filter((d) => /unmapped reply/.test(d.detail ?? '')).map((d) => d.detail),
      [],
    );
  });
});
