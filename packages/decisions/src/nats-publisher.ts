import { type JetStreamClient, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection, nanos } from '@nats-io/transport-node';
import {
  type Context,
  context,
  type Meter,
  metrics,
  trace as otelTrace,
  propagation,
  SpanKind,
} from '@opentelemetry/api';
import { events } from '@smtpguard/contracts';
import type { Logger } from '@smtpguard/logging';
import { DECISION_SUBJECTS, decisionSubject } from './decision.js';
import type { Outbox, Pending } from './outbox.js';
import type { DecisionPublisher } from './publisher.js';

export interface NatsPublisherOptions {
  servers: string[];
  stream: string;
  maxAgeSeconds: number;
  /** Replicas of the stream in a NATS cluster. */
  replicas: number;
  connectTimeoutMs: number;
  /** The write-ahead journal every decision goes through. */
  outbox: Outbox;
  name: string;
  logger: Logger;
  /** Where the published / waiting / dropped counts are reported; default: the global OpenTelemetry meter. */
  meter?: Meter;
}

/** Thrown by start() when NATS cannot be reached; main decides (nats.onUnavailable) what follows. */
export class NatsUnavailableError extends Error {}

/**
 * Publishes decisions into a JetStream stream, protobuf-encoded, with Nats-Msg-Id (de-duplication) and W3C
 * traceparent headers. publish() never blocks the SMTP dialogue: each decision is appended to the on-disk outbox
 * journal and published from there in the background, in order, each publish retried until JetStream acknowledges
 * it. While NATS is away, and after the process stopped or was killed, they wait in the journal and are sent once
 * NATS is reachable, by this process or the next one; only what the full journal refuses is dropped (counted and
 * logged).
 */
export class NatsDecisionPublisher implements DecisionPublisher {
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private draining = false;
  private closed = false;
  private connected = false;
  private retryTimer: NodeJS.Timeout | undefined;
  published = 0;

  constructor(private readonly opts: NatsPublisherOptions) {
    const meter = opts.meter ?? metrics.getMeter('@smtpguard/decisions');
    meter
      .createObservableCounter('smtpguard.decisions.published', {
        description: 'Decisions JetStream acknowledged',
        unit: '{decision}',
      })
      .addCallback((r) => r.observe(this.published));
    meter
      .createObservableUpDownCounter('smtpguard.decisions.buffered', {
        description: 'Decisions waiting in the outbox journal (NATS away, or not yet acknowledged)',
        unit: '{decision}',
      })
      .addCallback((r) => r.observe(this.opts.outbox.size));
    meter
      .createObservableCounter('smtpguard.decisions.dropped', {
        description: 'Decisions dropped because the outbox journal was full (nats.outboxMaxBytes)',
        unit: '{decision}',
      })
      .addCallback((r) => r.observe(this.opts.outbox.dropped));
  }

  /** Connects and makes sure the stream exists. Throws NatsUnavailableError when NATS is unreachable. */
  async start(): Promise<void> {
    try {
      await this.connectOnce();
    } catch (err) {
      throw new NatsUnavailableError(
        `NATS unreachable at ${this.opts.servers.join(',')}: ${(err as Error).message}`,
      );
    }
  }

  /** Keeps trying to connect in the background (used after start() failed with onUnavailable=buffer). */
  startInBackground(): void {
    const attempt = () => {
      if (this.closed || this.nc) return;
      this.connectOnce().then(
        () => {
          this.opts.logger.info(
            { servers: this.opts.servers },
            'NATS reachable again; sending buffered decisions',
          );
          this.drain();
        },
        () => {
          this.retryTimer = setTimeout(attempt, 2000);
          this.retryTimer.unref();
        },
      );
    };
    attempt();
  }

  private async connectOnce(): Promise<void> {
    const nc = await connect({
      servers: this.opts.servers,
      name: this.opts.name,
      timeout: this.opts.connectTimeoutMs,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // No stack captured for every request (a publish is one): it cost more than the publish itself.
      noAsyncTraces: true,
    });
    try {
      await this.ensureStream(nc);
    } catch (err) {
      await nc.close();
      throw err;
    }
    this.nc = nc;
    this.js = jetstream(nc, { timeout: 5000 });
    this.connected = true;
    // An outbox left by an earlier process (or kept while NATS was away) goes out first.
    setImmediate(() => this.drain());
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          this.connected = false;
          this.opts.logger.warn({ server: s.server }, 'NATS disconnected; decisions wait in the outbox');
        }
        if (s.type === 'reconnect') {
          this.connected = true;
          this.opts.logger.info({ server: s.server }, 'NATS reconnected');
          this.drain();
        }
      }
    })();
  }

  private async ensureStream(nc: NatsConnection): Promise<void> {
    const jsm = await jetstreamManager(nc, { timeout: this.opts.connectTimeoutMs });
    const config = {
      name: this.opts.stream,
      subjects: [DECISION_SUBJECTS],
      max_age: nanos(this.opts.maxAgeSeconds * 1000),
      duplicate_window: nanos(120_000),
      num_replicas: this.opts.replicas,
    };
    try {
      await jsm.streams.info(this.opts.stream);
      await jsm.streams.update(this.opts.stream, config);
    } catch (err) {
      if (!/not found/i.test((err as Error).message)) throw err;
      await jsm.streams.add(config);
    }
  }

  publish(d: events.Decision, ctx: Context = context.active()): void {
    const subject = decisionSubject(d);
    // A PRODUCER span per decision, child of the check's (or session's) span; its context goes into the message
    // headers, so a consumer's span joins the SMTP session's trace through it. It ends once the decision is in
    // the outbox journal (from there it is sent in the background, retried until JetStream acknowledges it).
    const span = otelTrace.getTracer('@smtpguard/decisions').startSpan(
      `send ${subject}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'nats',
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'publish',
          'messaging.destination.name': subject,
          'messaging.message.id': d.id,
        },
      },
      ctx,
    );
    const trace: Record<string, string> = {};
    propagation.inject(otelTrace.setSpan(ctx, span), trace);
    const kept = this.opts.outbox.append({
      subject,
      data: events.Decision.encode(d).finish(),
      id: d.id,
      trace,
    });
    if (!kept && (this.opts.outbox.dropped === 1 || this.opts.outbox.dropped % 1000 === 0)) {
      this.opts.logger.error(
        { droppedTotal: this.opts.outbox.dropped, path: this.opts.outbox.path },
        'decision outbox full; dropping decisions',
      );
    }
    if (!kept) span.setAttribute('error.type', 'outbox_full');
    span.end();
    if (!this.closed) this.drain();
  }

  /** Publishes the journal's unacknowledged decisions in order, each until JetStream acknowledges it. */
  private drain(): void {
    if (this.draining || !this.js || !this.connected || this.nc?.isClosed()) return;
    this.draining = true;
    void (async () => {
      try {
        while (this.connected && this.opts.outbox.size) {
          const batch = this.opts.outbox.next(64);
          if (!batch.length) break;
          const results = await Promise.allSettled(batch.map((b) => this.send(b.pending)));
          const firstFailure = results.findIndex((r) => r.status === 'rejected');
          const done = firstFailure < 0 ? batch.length : firstFailure;
          if (done > 0) {
            this.opts.outbox.ack((batch[done - 1] as { end: number }).end, done);
            this.published += done;
          }
          if (firstFailure >= 0) {
            const reason = (results[firstFailure] as PromiseRejectedResult).reason as Error;
            this.opts.logger.warn(
              { err: reason.message, outbox: this.opts.outbox.size },
              'decision publish failed; will retry',
            );
            await this.pause();
          }
        }
      } finally {
        this.draining = false;
      }
    })();
  }

  private pause(): Promise<void> {
    return new Promise((r) => setTimeout(r, 500).unref());
  }

  /** Published, waiting (in the outbox journal) and dropped decisions. */
  stats(): { published: number; outbox: number; dropped: number } {
    return { published: this.published, outbox: this.opts.outbox.size, dropped: this.opts.outbox.dropped };
  }

  private async send(p: Pending): Promise<void> {
    const h = headers();
    // An empty tracestate is not sent (W3C: omit the header when there is no vendor state).
    for (const [k, v] of Object.entries(p.trace)) if (v) h.set(k, v);
    await this.js?.publish(p.subject, p.data, { msgID: p.id, headers: h });
  }

  /**
   * Waits (bounded) for the journal to be published; what is left stays in it for the next start (not lost),
   * then the connection closes.
   */
  async close(timeoutMs = 3000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.opts.outbox.size && this.connected && Date.now() < until) {
      this.drain();
      await new Promise((r) => setTimeout(r, 20));
    }
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.opts.logger.info({ ...this.stats(), outboxPath: this.opts.outbox.path }, 'decisions at shutdown');
    this.opts.outbox.close();
    await this.disconnect(Math.max(until - Date.now(), 500));
  }

  /** Drains the connection; while NATS is away a drain cannot finish, so after timeoutMs it is closed outright. */
  private async disconnect(timeoutMs: number): Promise<void> {
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    const drained = nc.drain().then(
      () => true,
      () => false,
    );
    const timedOut = new Promise<false>((r) => {
      timer = setTimeout(() => r(false), timeoutMs);
    });
    if (!(await Promise.race([drained, timedOut]))) await nc.close().catch(() => undefined);
    clearTimeout(timer);
  }
}
