// NatsDecisionPublisher against a real nats-server; its counts read through a real OpenTelemetry SDK meter.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { common } from '@smtpguard/contracts';
import { createLogger } from '@smtpguard/logging';
import { type NatsServer, startNats, waitFor } from '@smtpguard/testing';
import { buildDecision } from './decision.js';
import { NatsDecisionPublisher } from './nats-publisher.js';
import { Outbox } from './outbox.js';

/** A pull reader: collect() on demand, as Prometheus scrapes. */
class PullReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

async function counts(reader: PullReader): Promise<Record<string, number>> {
  const { resourceMetrics } = await reader.collect();
  const out: Record<string, number> = {};
  for (const scope of resourceMetrics.scopeMetrics)
    for (const m of scope.metrics) out[m.descriptor.name] = Number(m.dataPoints[0]?.value ?? Number.NaN);
  return out;
}

const decision = (i: number) =>
  buildDecision(
    'smtp-edge',
    {
      session: common.SessionContext.fromPartial({ sessionId: `s${i}`, clientIp: '192.0.2.1' }),
      phase: 'rcpt',
      check: 'relay',
      outcome: 'fail',
      reasonCode: 'relay.denied',
    },
    '',
  );

let nats: NatsServer;
before(async () => {
  nats = await startNats();
});
after(async () => {
  await nats?.stop();
});

describe('NatsDecisionPublisher', () => {
  it('reports published, buffered and dropped decisions as OpenTelemetry metrics', async () => {
    const reader = new PullReader();
    const provider = new MeterProvider({ readers: [reader] });
    const dir = await mkdtemp(join(tmpdir(), 'sg-pub-'));
    const outbox = new Outbox(join(dir, 'outbox.jsonl'), 1500);
    const p = new NatsDecisionPublisher({
      servers: [nats.url],
      stream: 'PUB_TEST',
      maxAgeSeconds: 600,
      replicas: 1,
      connectTimeoutMs: 1000,
      outbox,
      name: 'test',
      logger: createLogger('test', { level: 'silent' }),
      meter: provider.getMeter('test'),
    });
    await p.start();
    for (let i = 0; i < 3; i++) p.publish(decision(i));
    await waitFor('3 published', () => p.stats().published === 3 || undefined);
    assert.deepEqual(await counts(reader), {
      'smtpguard.decisions.published': 3,
      'smtpguard.decisions.buffered': 0,
      'smtpguard.decisions.dropped': 0,
    });
    // NATS gone: decisions wait in the journal until it is full (1500 bytes: about 6 of them), then are dropped.
    await nats.stop();
    for (let i = 3; i < 20; i++) p.publish(decision(i));
    const c = await counts(reader);
    assert.equal(c['smtpguard.decisions.published'], 3);
    assert.ok((c['smtpguard.decisions.buffered'] ?? 0) > 0, JSON.stringify(c));
    assert.ok((c['smtpguard.decisions.dropped'] ?? 0) > 0, JSON.stringify(c));
    assert.equal((c['smtpguard.decisions.buffered'] ?? 0) + (c['smtpguard.decisions.dropped'] ?? 0), 17);
    await p.close(100);
    await provider.shutdown();
  });
});
