import { type JetStreamClient, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection, nanos } from '@nats-io/transport-node';
import { type Context, context, propagation } from '@opentelemetry/api';
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
  /** Decisions kept in memory while they are published; more (or any while NATS is away) go to the outbox. */
  bufferLimit: number;
  outbox: Outbox;
  name: string;
  logger: Logger;
}

/** Thrown by start() when NATS cannot be reached; main decides (nats.onUnavailable) what follows. */
export class NatsUnavailableError extends Error {}

/**
 * Publishes decisions into a JetStream stream, protobuf-encoded, with Nats-Msg-Id (de-duplication) and W3C
 * traceparent headers. publish() never blocks the SMTP dialogue: events go into a bounded in-memory queue drained
 * in the background, each publish retried until JetStream acknowledges it. While NATS is away (or the queue is
 * full, or the process stops) they go to the on-disk outbox instead, bounded, and are sent in order once NATS is
 * back, by this process or the next one; only what the full outbox refuses is dropped (counted and logged).
 */
export class NatsDecisionPublisher implements DecisionPublisher {
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private queue: Pending[] = [];
  private draining = false;
  private closed = false;
  private connected = false;
  private retryTimer: NodeJS.Timeout | undefined;
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
      reconnectTimeWait: 250,
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
          this.opts.logger.warn({ server: s.server }, 'NATS disconnected; decisions go to the outbox');
          this.spill(this.queue.length);
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
    const trace: Record<string, string> = {};
    propagation.inject(ctx, trace);
    const p = { subject: decisionSubject(d), data: events.Decision.encode(d).finish(), id: d.id, trace };
    if (this.closed || !this.connected) {
      void this.toOutbox([p]);
      return;
    }
    this.queue.push(p);
    if (this.queue.length > this.opts.bufferLimit) this.spill(this.queue.length - this.opts.bufferLimit);
    this.drain();
  }

  /** Moves the oldest `n` queued decisions to the outbox, keeping their order before what is queued later. */
  private spill(n: number): void {
    if (n <= 0) return;
    void this.toOutbox(this.queue.splice(0, n));
  }

  private async toOutbox(entries: Pending[]): Promise<void> {
    const dropped = await this.opts.outbox.append(entries);
    if (dropped) {
      this.opts.logger.error(
        { dropped, droppedTotal: this.opts.outbox.dropped, path: this.opts.outbox.path },
        'decision outbox full; dropping decisions',
      );
    }
  }

  /** Publishes the outbox first (oldest), then the queue, each until JetStream acknowledges it. */
  private drain(): void {
    if (this.draining || !this.js || this.nc?.isClosed()) return;
    this.draining = true;
    void (async () => {
      try {
        while (this.connected && !this.closed && (this.opts.outbox.size || this.queue.length)) {
          if (this.opts.outbox.size) {
            this.published += await this.opts.outbox.drain((p) => this.send(p));
            if (this.opts.outbox.size) {
              await this.pause();
              continue;
            }
          }
          const batch = this.queue.slice(0, 64);
          const results = await Promise.allSettled(batch.map((p) => this.send(p)));
          const firstFailure = results.findIndex((r) => r.status === 'rejected');
          const done = firstFailure < 0 ? batch.length : firstFailure;
          this.queue.splice(0, done);
          this.published += done;
          if (firstFailure >= 0) {
            const reason = (results[firstFailure] as PromiseRejectedResult).reason as Error;
            this.opts.logger.warn(
              { err: reason.message, pending: this.queue.length, outbox: this.opts.outbox.size },
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

  /** Published, waiting (memory and outbox) and dropped decisions. */
  stats(): { published: number; queued: number; outbox: number; dropped: number } {
    return {
      published: this.published,
      queued: this.queue.length,
      outbox: this.opts.outbox.size,
      dropped: this.opts.outbox.dropped,
    };
  }

  private async send(p: Pending): Promise<void> {
    const h = headers();
    for (const [k, v] of Object.entries(p.trace)) h.set(k, v);
    await this.js?.publish(p.subject, p.data, { msgID: p.id, headers: h });
  }

  /**
   * Waits (bounded) for queued decisions to go out; what is left goes to the outbox for the next start (not
   * lost), then the connection closes.
   */
  async close(timeoutMs = 3000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while ((this.queue.length || this.opts.outbox.size) && this.connected && Date.now() < until) {
      this.drain();
      await new Promise((r) => setTimeout(r, 20));
    }
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (this.queue.length) await this.toOutbox(this.queue.splice(0));
    this.opts.logger.info({ ...this.stats(), outboxPath: this.opts.outbox.path }, 'decisions at shutdown');
    await this.nc?.drain().catch(() => undefined);
  }
}
