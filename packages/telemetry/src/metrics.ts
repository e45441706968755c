import {
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  metrics,
  type UpDownCounter,
} from '@opentelemetry/api';

/**
 * The metrics smtpguard records, in one place: their names, units and labels (docs/observability.md lists
 * them, the dashboards query them, test/src/e2e/dashboards.test.ts scrapes them). Label values are bounded:
 * listener names, check names, reason codes from the catalog, reply codes, configured DNS zones, RPC methods,
 * never addresses or ids.
 *
 * Instruments are created on first use from the global meter provider, which the preloaded SDK
 * (`--import @smtpguard/telemetry/register`) has set by then; without the SDK (unit tests) they are no-ops.
 */

// Latency buckets in seconds, from a cached answer (sub-millisecond) to a next hop's slow DATA (a minute).
const SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface Instruments {
  connectionsActive: UpDownCounter;
  connections: Counter;
  connectionsRefused: Counter;
  replies: Counter;
  decisions: Counter;
  checkDuration: Histogram;
  rpcDuration: Histogram;
  rpcErrors: Counter;
  nextHopDuration: Histogram;
  messages: Counter;
  messageBytes: Counter;
  greylistStoreDuration: Histogram;
  dnsListDuration: Histogram;
  dnsLookupDuration: Histogram;
}

let made: Instruments | undefined;

function seconds(meter: Meter, name: string, description: string): Histogram {
  return meter.createHistogram(name, {
    description,
    unit: 's',
    advice: { explicitBucketBoundaries: SECONDS },
  });
}

function instruments(): Instruments {
  if (made) return made;
  const m = metrics.getMeter('smtpguard');
  made = {
    connectionsActive: m.createUpDownCounter('smtpguard.smtp.connections.active', {
      description: 'SMTP connections open now (admitted by the connection limits)',
      unit: '{connection}',
    }),
    connections: m.createCounter('smtpguard.smtp.connections', {
      description: 'SMTP connections admitted by the connection limits',
      unit: '{connection}',
    }),
    connectionsRefused: m.createCounter('smtpguard.smtp.connections.refused', {
      description: 'SMTP connections refused by a connection limit (reason: the catalog code)',
      unit: '{connection}',
    }),
    replies: m.createCounter('smtpguard.smtp.replies', {
      description: 'SMTP replies sent because of a decision (refusals) and acceptances of messages',
      unit: '{reply}',
    }),
    decisions: m.createCounter('smtpguard.decisions', {
      description: 'Decisions recorded, by service, phase, check, outcome and reason code',
      unit: '{decision}',
    }),
    checkDuration: seconds(m, 'smtpguard.check.duration', 'How long a check took to decide'),
    rpcDuration: seconds(m, 'rpc.client.call.duration', 'gRPC calls to the backend services'),
    rpcErrors: m.createCounter('smtpguard.backend.errors', {
      description: 'gRPC calls to a backend service that failed (error.type: the gRPC status name)',
      unit: '{call}',
    }),
    nextHopDuration: seconds(
      m,
      'smtpguard.next_hop.duration',
      'Steps of the transaction at the next hop (rcpt, data, commit); outcome ok, refused or error',
    ),
    messages: m.createCounter('smtpguard.messages.accepted', {
      description: 'Messages the next hop (or the spool) took and the client was answered 250',
      unit: '{message}',
    }),
    messageBytes: m.createCounter('smtpguard.messages.accepted.bytes', {
      description: 'Octets of the messages accepted',
      unit: 'By',
    }),
    greylistStoreDuration: seconds(
      m,
      'smtpguard.greylist.store.duration',
      'Operations of the greylist store (file or NATS KV)',
    ),
    dnsListDuration: seconds(
      m,
      'smtpguard.dnsl.query.duration',
      'Questions to one DNS list (outcome listed, not_listed, error, disabled)',
    ),
    dnsLookupDuration: seconds(
      m,
      'dns.lookup.duration',
      'DNS questions the reputation service sent to its resolvers (cache misses)',
    ),
  };
  return made;
}

const since = (startedMs: number) => (performance.now() - startedMs) / 1000;

/** Recording functions, each called from one place. */
export const smtpMetrics = {
  connectionOpened(listener: string): void {
    const i = instruments();
    i.connections.add(1, { listener });
    i.connectionsActive.add(1, { listener });
  },
  connectionClosed(listener: string): void {
    instruments().connectionsActive.add(-1, { listener });
  },
  connectionRefused(listener: string, reason: string): void {
    instruments().connectionsRefused.add(1, { listener, reason });
  },
  /** A decision of any service; `reply` when the decision sent one. */
  decision(d: {
    service: string;
    phase: string;
    check: string;
    outcome: string;
    reason: string;
    latencyMs?: number | undefined;
    replyCode?: number | undefined;
  }): void {
    const i = instruments();
    const attrs: Attributes = {
      service: d.service,
      phase: d.phase,
      check: d.check,
      outcome: d.outcome,
      reason: d.reason,
    };
    i.decisions.add(1, attrs);
    if (d.latencyMs !== undefined && d.latencyMs > 0) {
      i.checkDuration.record(d.latencyMs / 1000, {
        service: d.service,
        phase: d.phase,
        check: d.check,
        outcome: d.outcome,
      });
    }
    if (d.replyCode) i.replies.add(1, { code: String(d.replyCode), reason: d.reason });
  },
  /** A message handed over and answered 250 (its reply is counted with the replies). */
  messageAccepted(listener: string, bytes: number): void {
    const i = instruments();
    i.messages.add(1, { listener });
    i.messageBytes.add(bytes, { listener });
    i.replies.add(1, { code: '250', reason: 'queue.accepted' });
  },
  /** One gRPC client call; status is the gRPC status name ("OK", "UNAVAILABLE", ...). */
  rpcCall(service: string, method: string, status: string, startedMs: number): void {
    const i = instruments();
    const attrs: Attributes = {
      'rpc.system': 'grpc',
      'rpc.service': service,
      'rpc.method': method,
      'rpc.grpc.status_code': status,
    };
    i.rpcDuration.record(since(startedMs), attrs);
    if (status !== 'OK') {
      i.rpcErrors.add(1, { 'rpc.service': service, 'rpc.method': method, 'error.type': status });
    }
  },
  nextHop(operation: string, outcome: 'ok' | 'refused' | 'error', startedMs: number): void {
    instruments().nextHopDuration.record(since(startedMs), { operation, outcome });
  },
  greylistStore(store: string, operation: string, ok: boolean, startedMs: number): void {
    instruments().greylistStoreDuration.record(since(startedMs), {
      store,
      operation,
      outcome: ok ? 'ok' : 'error',
    });
  },
  dnsList(zone: string, kind: string, outcome: string, startedMs: number): void {
    instruments().dnsListDuration.record(since(startedMs), { zone, kind, outcome });
  },
  /** One question sent to a resolver; errorType is the DNS error (ETIMEOUT, SERVFAIL, ...) or "" when answered. */
  dnsLookup(type: string, errorType: string, startedMs: number): void {
    const attrs: Attributes = { 'dns.question.type': type };
    if (errorType) attrs['error.type'] = errorType;
    instruments().dnsLookupDuration.record(since(startedMs), attrs);
  },
};

/** The meter for a package's observable instruments (gauges read at collection time). */
export function smtpguardMeter(): Meter {
  return metrics.getMeter('smtpguard');
}
