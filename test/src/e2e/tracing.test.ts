// Trace details end to end: the services export spans over OTLP/HTTP JSON (the SDK's own
// OTEL_EXPORTER_OTLP_PROTOCOL) to a small collector in the test; a refused and an accepted transaction put the
// sender, the recipient count and the reply code on the session's spans; each decision published on NATS has a
// PRODUCER span whose context is the message's traceparent; no message carries an empty tracestate header.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type CaptureServer,
  type NatsServer,
  startCaptureServer,
  startNats,
  waitFor,
} from '@smtpguard/testing';
import { DecisionTap } from '../harness/decisions.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { type ReceivedSpan, startOtlpReceiver } from '../harness/otlp-receiver.js';
import { smtpSend } from '../harness/smtp-client.js';
import { ALICE, startTestSystem, type TestSystem, testMessage } from '../harness/system.js';

let nats: NatsServer;
let dns: DnsServer;
let hop: CaptureServer;
let sys: TestSystem;
let tap: DecisionTap;
let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
const SERVER = 2;
const PRODUCER = 4;

before(async () => {
  nats = await startNats();
  dns = await startDnsServer({ '2.0.0.127.dnsbl.test': { A: ['127.0.0.2'] } });
  hop = await startCaptureServer();
  otlp = await startOtlpReceiver();
  tap = await DecisionTap.open(nats.url);
  sys = await startTestSystem({
    natsUrl: nats.url,
    dnsServer: dns.address,
    nextHopPort: hop.port,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '200',
      OTEL_METRICS_EXPORTER: 'none',
    },
  });
  const message = testMessage(ALICE.user, 'bob@remote.example', 'traced');
  const ok = await smtpSend({
    port: sys.submissionPort,
    auth: ALICE,
    from: ALICE.user,
    to: ['bob@remote.example', 'carol@remote.example'],
    message,
  });
  assert.equal(ok.code, 250, ok.response);
  const refused = await smtpSend({
    port: sys.mxPort,
    localAddress: '127.0.0.60',
    from: 'x@sender.example',
    to: ['y@remote.example'],
    message,
  });
  assert.equal(refused.code, 550, refused.response);
});

after(async () => {
  await sys?.stop();
  await tap?.close();
  await otlp?.close();
  await hop?.close();
  await dns?.close();
  await nats?.stop();
});

const sessionSpans = () => otlp.spans.filter((s) => s.name === 'smtp.session' && s.kind === SERVER);

describe('spans', () => {
  it('puts the sender, the recipient count and the reply code on the session span of an accepted message', async () => {
    const s = await waitFor(
      'the accepted session span',
      () => sessionSpans().find((x) => x.attributes['smtp.reply.code'] === 250),
      10_000,
    );
    assert.equal(s.service, 'smtpguard-smtp-edge');
    assert.equal(s.attributes['smtp.mail_from'], ALICE.user);
    assert.equal(s.attributes['smtp.rcpt_count'], 2);
    assert.match(String(s.attributes['smtpguard.message_id']), /^[0-9A-F]{20}$/);
    // The checks after MAIL FROM carry the sender; after the first recipient, the count.
    const checks = otlp.spans.filter((x) => x.traceId === s.traceId && x.name === 'rcpt relay');
    assert.ok(checks.length >= 2, 'a relay check span per recipient');
    assert.ok(checks.every((c) => c.attributes['smtp.mail_from'] === ALICE.user));
    assert.deepEqual(checks.map((c) => c.attributes['smtp.rcpt_count']).sort(), [0, 1]);
  });

  it('records each refusal on the session span: reply code, reason, sender, recipient', async () => {
    const s = await waitFor(
      'the refused session span',
      () =>
        sessionSpans().find((x) => x.events.some((e) => e.attributes['smtpguard.reason'] === 'relay.denied')),
      10_000,
    );
    // The client went on with DATA after its only recipient was refused: the last reply code is that 503.
    assert.equal(s.attributes['smtp.reply.code'], 503);
    const e = s.events.find((x) => x.name === 'smtp.refusal');
    assert.deepEqual(e?.attributes, {
      'smtp.reply.code': 550,
      'smtpguard.reason': 'relay.denied',
      'smtpguard.check': 'relay',
      'smtp.mail_from': 'x@sender.example',
      'smtp.rcpt_to': 'y@remote.example',
    });
  });
});

describe('decisions on NATS', () => {
  it('each has a PRODUCER span in the session trace whose context is the traceparent header', async () => {
    const r = await tap.find((d) => d.reasonCode === 'relay.denied', 'relay.denied');
    const [, traceId, parentId] = r.traceparent.split('-');
    const producer = await waitFor(
      'the producer span',
      () => otlp.spans.find((x) => x.spanId === parentId),
      10_000,
    );
    assert.equal(producer.kind, PRODUCER);
    assert.equal(producer.traceId, traceId);
    assert.equal(producer.name, 'send smtpguard.decision.v1.smtp-edge.rcpt');
    assert.equal(producer.attributes['messaging.system'], 'nats');
    assert.equal(producer.attributes['messaging.destination.name'], r.subject);
    assert.equal(producer.attributes['messaging.message.id'], r.decision.id);
    assert.equal(r.decision.traceId, traceId, 'the decision names the same trace');
    // Its parent is a span of the same trace (the check's).
    const parent = otlp.spans.find((x) => x.spanId === producer.parentSpanId) as ReceivedSpan | undefined;
    assert.equal(parent?.traceId, traceId);
  });

  it('sends no empty header (no empty tracestate)', () => {
    assert.ok(tap.seen.length > 5);
    for (const r of tap.seen) {
      for (const [k, v] of Object.entries(r.headers)) assert.notEqual(v, '', `${r.subject}: empty ${k}`);
      assert.match(r.headers.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    }
  });
});
