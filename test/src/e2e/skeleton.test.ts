// The walking skeleton end to end: real SMTP clients -> smtp-edge -> auth/reputation/greylist over gRPC
// -> capture SMTP next hop, with a real nats-server (JetStream) and a real DNS server on 127.0.0.1.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { events } from '@smtpguard/contracts';
import {
  type CaptureServer,
  type NatsServer,
  startCaptureServer,
  startNats,
  waitFor,
} from '@smtpguard/testing';
import { DecisionTap, type ReceivedDecision } from '../harness/decisions.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { smtpSend } from '../harness/smtp-client.js';
import { ALICE, startTestSystem, type TestSystem, testMessage } from '../harness/system.js';

let nats: NatsServer;
let dns: DnsServer;
let hop: CaptureServer;
let sys: TestSystem;
let tap: DecisionTap;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Checks the NATS envelope of a decision: subject, de-duplication id, W3C trace context. */
function assertEnvelope(r: ReceivedDecision, service: string, phase: string): void {
  assert.equal(r.subject, `smtpguard.decision.v1.${service}.${phase}`);
  assert.equal(r.msgId, r.decision.id);
  assert.match(r.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  assert.equal(r.traceparent.split('-')[1], r.decision.traceId);
}

before(async () => {
  nats = await startNats();
  dns = await startDnsServer({
    // RFC 5782 test point: 127.0.0.2 is listed, 127.0.0.1 is not.
    '2.0.0.127.dnsbl.test': { A: ['127.0.0.2'], TXT: ['listed for testing'] },
  });
  hop = await startCaptureServer();
  tap = await DecisionTap.open(nats.url);
  sys = await startTestSystem({
    natsUrl: nats.url,
    dnsServer: dns.address,
    nextHopPort: hop.port,
    greylistDelaySeconds: 2,
  });
});

after(async () => {
  await sys?.stop();
  await tap?.close();
  await hop?.close();
  await dns?.close();
  await nats?.stop();
});

describe('walking skeleton', () => {
  it('greylists a new triplet with 451 4.7.1, then accepts the retry after the delay', async () => {
    const mail = { port: sys.mxPort, from: 'first@sender.example', to: ['alice@example.test'] };
    const first = await smtpSend({ ...mail, message: testMessage(mail.from, 'alice@example.test', 'grey1') });
    assert.equal(first.code, 451, first.response);
    assert.match(first.response, /^451 4\.7\.1 Greylisted/);
    const early = await smtpSend({ ...mail, message: testMessage(mail.from, 'alice@example.test', 'grey2') });
    assert.match(early.response, /^451 4\.7\.1 /);
    await sleep(2100);
    const retry = await smtpSend({ ...mail, message: testMessage(mail.from, 'alice@example.test', 'grey3') });
    assert.equal(retry.code, 250, retry.response);

    const edgeDefer = await tap.find(
      (d) =>
        d.service === 'smtp-edge' &&
        d.check === 'greylist' &&
        d.reasonCode === 'greylist.new' &&
        d.session?.sender === mail.from,
      'edge greylist.new',
    );
    assertEnvelope(edgeDefer, 'smtp-edge', 'rcpt');
    assert.equal(edgeDefer.decision.outcome, events.Outcome.OUTCOME_DEFER);
    assert.equal(edgeDefer.decision.reply?.code, 451);
    assert.equal(edgeDefer.decision.reply?.enhancedCode, '4.7.1');
    assert.equal(edgeDefer.decision.recipient, 'alice@example.test');
    assert.equal(edgeDefer.decision.session?.clientIp, '127.0.0.1');
    assert.equal(edgeDefer.decision.session?.helo, 'client.example.net');
    assert.ok(
      edgeDefer.decision.attributes.triplet?.startsWith(
        '127.0.0.0/24|first@sender.example|alice@example.test',
      ),
    );
    const serviceDefer = await tap.find(
      (d) => d.service === 'greylist' && d.reasonCode === 'greylist.new' && d.session?.sender === mail.from,
      'greylist service greylist.new',
    );
    assertEnvelope(serviceDefer, 'greylist', 'rcpt');
    // The greylist service's decision belongs to the same trace as the edge's (gRPC propagates context).
    assert.equal(serviceDefer.decision.traceId, edgeDefer.decision.traceId);
    const passed = await tap.find(
      (d) =>
        d.service === 'smtp-edge' && d.reasonCode === 'greylist.passed' && d.session?.sender === mail.from,
      'greylist.passed',
    );
    assert.equal(passed.decision.outcome, events.Outcome.OUTCOME_PASS);
  });

  it('delivers mail for a local user byte for byte, plus Received-SPF, Authentication-Results, Received and X-Greylist', async () => {
    const from = 'bytes@sender.example';
    const message = testMessage(from, 'alice@example.test', 'bytes');
    const before = hop.messages.length;
    await smtpSend({ port: sys.mxPort, from, to: ['alice@example.test'], message }); // greylisted
    await sleep(2100);
    const r = await smtpSend({ port: sys.mxPort, from, to: ['alice@example.test'], message });
    assert.equal(r.code, 250, r.response);
    assert.match(r.response, /^250 2\.0\.0 Ok: queued as [0-9A-F]{20}$/);
    assert.equal(hop.messages.length, before + 1);
    const got = hop.messages.at(-1);
    assert.ok(got);
    assert.equal(got.from, from);
    assert.deepEqual(got.to, ['alice@example.test']);
    const text = got.raw.toString('utf8');
    // The checks' fields (Received-SPF, Authentication-Results) come first, then the trace headers.
    const received =
      /^Received-SPF: none \(mx\.example\.test: sender\.example does not designate permitted sender hosts\) [^\r\n]+\r\nAuthentication-Results: mx\.example\.test; dkim=none [^\r\n]+ dmarc=none [^\r\n]+\r\nReceived: from client\.example\.net \(\[127\.0\.0\.1\]\)\r\n\tby mx\.example\.test \(smtpguard\) with ESMTP id ([0-9A-F]{20})\r\n\tfor <alice@example\.test>;\r\n\t[^\r\n]+\r\nX-Greylist: delayed [23] seconds by smtpguard at mx\.example\.test; [^\r\n]+\r\n/.exec(
        text,
      );
    assert.ok(received, `unexpected header block:\n${text.slice(0, 300)}`);
    assert.equal(r.response.endsWith(received[1] as string), true);
    assert.deepEqual(got.raw.subarray(Buffer.byteLength(received[0])), Buffer.from(message));

    const queued = await tap.find(
      (d) => d.reasonCode === 'queue.accepted' && d.messageId === received[1],
      'queue.accepted',
    );
    assertEnvelope(queued, 'smtp-edge', 'queue');
    assert.equal(queued.decision.attributes.next_hop, `smtp://127.0.0.1:${hop.port}`);
  });

  it('refuses an unauthenticated relay with 550 5.7.1 and reason relay.denied', async () => {
    const before = hop.messages.length;
    const r = await smtpSend({
      port: sys.mxPort,
      from: 'spammer@sender.example',
      to: ['victim@remote.example'],
      message: testMessage('spammer@sender.example', 'victim@remote.example', 'relay'),
    });
    assert.equal(r.code, 550, r.response);
    assert.match(r.response, /^550 5\.7\.1 Relaying denied: <victim@remote\.example> is not local/);
    assert.equal(hop.messages.length, before);
    const d = await tap.find(
      (x) => x.reasonCode === 'relay.denied' && x.recipient === 'victim@remote.example',
      'relay.denied',
    );
    assertEnvelope(d, 'smtp-edge', 'rcpt');
    assert.equal(d.decision.outcome, events.Outcome.OUTCOME_FAIL);
    assert.equal(d.decision.check, 'relay');
    assert.match(d.decision.detail, /not in edge\.trustedNetworks/);
  });

  it('refuses an unknown local recipient with 550 5.1.1', async () => {
    const r = await smtpSend({
      port: sys.mxPort,
      from: 'someone@sender.example',
      to: ['nobody@example.test'],
      message: testMessage('someone@sender.example', 'nobody@example.test', 'unknown'),
    });
    assert.equal(r.code, 550, r.response);
    assert.match(r.response, /^550 5\.1\.1 Unknown user <nobody@example\.test>/);
    await tap.find(
      (x) => x.reasonCode === 'rcpt.unknown_user' && x.recipient === 'nobody@example.test',
      'rcpt.unknown_user',
    );
  });

  it('relays for an authenticated user on the submission port', async () => {
    const before = hop.messages.length;
    const r = await smtpSend({
      port: sys.submissionPort,
      auth: ALICE,
      from: ALICE.user,
      to: ['friend@remote.example'],
      message: testMessage(ALICE.user, 'friend@remote.example', 'relay-auth'),
    });
    assert.equal(r.code, 250, r.response);
    assert.equal(hop.messages.length, before + 1);
    assert.deepEqual(hop.messages.at(-1)?.to, ['friend@remote.example']);
    const granted = await tap.find(
      (d) => d.reasonCode === 'relay.granted.authenticated' && d.recipient === 'friend@remote.example',
      'relay.granted.authenticated',
    );
    assert.equal(granted.decision.session?.authenticatedUser, ALICE.user);
    assert.equal(granted.decision.session?.listener, 2);
    await tap.find(
      (d) =>
        d.reasonCode === 'auth.ok' &&
        d.session?.authenticatedUser === ALICE.user &&
        d.phase === events.Phase.PHASE_AUTH,
      'auth.ok',
    );
  });

  it('requires AUTH on the submission port (530 5.7.0) and refuses bad credentials (535 5.7.8)', async () => {
    const noAuth = await smtpSend({
      port: sys.submissionPort,
      from: ALICE.user,
      to: ['friend@remote.example'],
      message: testMessage(ALICE.user, 'friend@remote.example', 'noauth'),
    });
    assert.equal(noAuth.code, 530, noAuth.response);
    assert.match(noAuth.response, /^530 5\.7\.0 Authentication required/);
    const bad = await smtpSend({
      port: sys.submissionPort,
      auth: { user: ALICE.user, pass: 'wrong' },
      from: ALICE.user,
      to: ['friend@remote.example'],
      message: 'x',
    });
    assert.equal(bad.code, 535, bad.response);
    assert.match(bad.response, /^535 5\.7\.8 /);
    const d = await tap.find((x) => x.reasonCode === 'auth.bad_credentials', 'auth.bad_credentials');
    assertEnvelope(d, 'smtp-edge', 'auth');
    assert.ok(
      !JSON.stringify(events.Decision.toJSON(d.decision)).includes('wrong'),
      'the password must not be in the event',
    );
  });

  it('refuses a client listed in the DNSBL with 554 5.7.1, but lets it reach postmaster', async () => {
    const listed = { port: sys.mxPort, localAddress: '127.0.0.2', from: 'bulk@sender.example' };
    const r = await smtpSend({
      ...listed,
      to: ['alice@example.test'],
      message: testMessage(listed.from, 'alice@example.test', 'dnsbl'),
    });
    assert.equal(r.code, 554, r.response);
    assert.match(
      r.response,
      /^554 5\.7\.1 The IP address of the sender \(127\.0\.0\.2\) is listed on dnsbl\.test/,
    );
    const d = await tap.find(
      (x) => x.reasonCode === 'dnsbl.listed' && x.phase === events.Phase.PHASE_RCPT,
      'dnsbl.listed at rcpt',
    );
    assertEnvelope(d, 'smtp-edge', 'rcpt');
    assert.equal(d.decision.attributes.zone, 'dnsbl.test');
    assert.equal(d.decision.session?.clientIp, '127.0.0.2');
    const atConnect = await tap.find(
      (x) =>
        x.reasonCode === 'dnsbl.listed' &&
        x.phase === events.Phase.PHASE_CONNECT &&
        x.session?.clientIp === '127.0.0.2',
      'dnsbl.listed at connect',
    );
    assertEnvelope(atConnect, 'smtp-edge', 'connect');
    assert.equal(atConnect.decision.reply, undefined, 'the verdict is kept at connect, not replied');

    const pm = await smtpSend({
      ...listed,
      to: ['postmaster@example.test'],
      message: testMessage(listed.from, 'postmaster@example.test', 'pm'),
    });
    assert.equal(pm.code, 250, pm.response);
    await tap.find((x) => x.reasonCode === 'dnsbl.exempt_recipient', 'dnsbl.exempt_recipient');
    assert.ok(dns.queries.includes('A 2.0.0.127.dnsbl.test'));
  });

  it('answers 451 4.4.1 at RCPT when the next hop is down, and nothing counts as delivered', async () => {
    const port = hop.port;
    const before = hop.messages.length;
    await hop.close();
    try {
      const r = await smtpSend({
        port: sys.submissionPort,
        auth: ALICE,
        from: ALICE.user,
        to: ['friend@remote.example'],
        message: testMessage(ALICE.user, 'friend@remote.example', 'hop-down'),
      });
      // The before-queue proxy offers each recipient to the next hop: its outage is known at RCPT.
      assert.equal(r.code, 451, r.response);
      assert.match(r.response, /^451 4\.4\.1 Recipient <friend@remote\.example> cannot be accepted now/);
      const d = await tap.find(
        (x) => x.reasonCode === 'rcpt.nexthop_unavailable' && x.recipient === 'friend@remote.example',
        'rcpt.nexthop_unavailable',
      );
      assertEnvelope(d, 'smtp-edge', 'rcpt');
      assert.equal(d.decision.outcome, events.Outcome.OUTCOME_ERROR);
      assert.equal(
        tap.seen.filter(
          (x) =>
            x.decision.reasonCode === 'queue.accepted' &&
            x.decision.session?.sessionId === d.decision.session?.sessionId,
        ).length,
        0,
      );
    } finally {
      hop = await startCaptureServer({ port });
    }
    assert.equal(hop.messages.length, 0);
    void before;
    // The client retries once the next hop is back; now it is accepted.
    const again = await waitFor('delivery after the next hop is back', async () => {
      const r = await smtpSend({
        port: sys.submissionPort,
        auth: ALICE,
        from: ALICE.user,
        to: ['friend@remote.example'],
        message: testMessage(ALICE.user, 'friend@remote.example', 'hop-back'),
      });
      return r.code === 250 ? r : undefined;
    });
    assert.equal(again.code, 250);
    assert.equal(hop.messages.length, 1);
  });
});
