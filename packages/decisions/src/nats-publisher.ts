import { type JetStreamClient, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection, nanos } from '@nats-io/transport-node';
import { type Context, context, propagation } from '@opentelemetry/api';
import { events } from '@smtpguard/contracts';
import type { Logger } from '@smtpguard/logging';
import { DECISION_SUBJECTS, decisionSubject } from './decision.js';
import type { DecisionPublisher } from './publisher.js';

export interface NatsPublisherOptions {
  servers: string[];
  stream: string;
  maxAgeSeconds: number;
  connectTimeoutMs: number;
  bufferLimit: number;
  name: string;
  logger: Logger;
}

interface Pending {
  subject: string;
  data: Uint8Array;
  id: string;
  trace: Record<string, string>;
}

/** Thrown by start() when NATS cannot be reached; main decides (nats.onUnavailable) what follows. */
export class NatsUnavailableError extends Error {}

/**
 * Publishes decisions into a JetStream stream, protobuf-encoded, with Nats-Msg-Id (de-duplication)
 * and W3C traceparent headers. publish() never blocks the SMTP dialogue: events go into a bounded
 * in-memory queue drained in the background; while NATS is away they wait there (oldest dropped
 * beyond bufferLimit, counted and logged) and are sent once it is back.
 */
export class NatsDecisionPublisher implements DecisionPublisher {
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private queue: Pending[] = [];
  private draining = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  dropped = 0;
  published = 0;

  constructor(private readonly opts: NatsPublisherOptions) {}

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
      reconnectTimeWait: 1000,
    });
    try {
      await this.ensureStream(nc);
    } catch (err) {
      await nc.close();
      throw err;
    }
    this.nc = nc;
    this.js = jetstream(nc, { timeout: 5000 });
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect')
          this.opts.logger.warn({ server: s.server }, 'NATS disconnected; buffering decisions');
        if (s.type === 'reconnect') {
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
    if (this.closed) return;
    const trace: Record<string, string> = {};
    propagation.inject(ctx, trace);
    this.queue.push({
      subject: decisionSubject(d),
      data: events.Decision.encode(d).finish(),
      id: d.id,
      trace,
    });
    if (this.queue.length > this.opts.bufferLimit) {
      const over = this.queue.length - this.opts.bufferLimit;
      this.queue.splice(0, over);
      if (this.dropped === 0 || this.dropped % 1000 === 0) {
        this.opts.logger.error(
          { dropped: this.dropped + over },
          'decision buffer full; dropping oldest decisions',
        );
      }
      this.dropped += over;
    }
    this.drain();
  }

  private drain(): void {
    if (this.draining || !this.js || this.nc?.isClosed()) return;
    this.draining = true;
    void (async () => {
      try {
        while (this.queue.length && this.js) {
          const batch = this.queue.slice(0, 64);
          const results = await Promise.allSettled(batch.map((p) => this.send(p)));
          const firstFailure = results.findIndex((r) => r.status === 'rejected');
          const done = firstFailure < 0 ? batch.length : firstFailure;
          this.queue.splice(0, done);
          this.published += done;
          if (firstFailure >= 0) {
            const reason = (results[firstFailure] as PromiseRejectedResult).reason as Error;
            this.opts.logger.warn(
              { err: reason.message, pending: this.queue.length },
              'decision publish failed; will retry',
            );
            await new Promise((r) => setTimeout(r, 1000).unref());
            if (this.closed) break;
          }
        }
      } finally {
        this.draining = false;
      }
    })();
  }

  private async send(p: Pending): Promise<void> {
    const h = headers();
    for (const [k, v] of Object.entries(p.trace)) h.set(k, v);
    await this.js?.publish(p.subject, p.data, { msgID: p.id, headers: h });
  }

  /** Waits (bounded) for queued decisions to go out, then closes the connection. */
  async close(timeoutMs = 3000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.queue.length && this.nc && !this.nc.isClosed() && Date.now() < until) {
      this.drain();
      await new Promise((r) => setTimeout(r, 20));
    }
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (this.queue.length)
      this.opts.logger.warn({ lost: this.queue.length }, 'decisions not published at shutdown');
    await this.nc?.drain().catch(() => undefined);
  }
}
