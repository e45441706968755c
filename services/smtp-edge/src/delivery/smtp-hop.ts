import type { Writable } from 'node:stream';
import type { Config } from '@smtpguard/config';
import {
  DeliveryError,
  type HopEnvelope,
  type HopReply,
  type HopTransaction,
  type NextHop,
} from './next-hop.js';
import { NextHopPool } from './pool.js';
import { SmtpClient, type SmtpClientOptions } from './smtp-client.js';

export type SmtpHopConfig = Extract<Config['edge']['nextHop'], { type: 'smtp' | 'lmtp' }>;

/**
 * Answer to every recipient of an SMTPUTF8 transaction when the next hop does not advertise SMTPUTF8 (RFC
 * 6531 3.4: the message cannot be passed on without it; downgrading is not ours to do). Synthesized by the
 * edge, MAIL FROM is not sent.
 */
export const SMTPUTF8_REFUSAL: HopReply = {
  code: 553,
  enhanced: '5.6.7',
  text: 'the next hop does not support SMTPUTF8',
};

// A next hop that could not be reached is tried after the others for this long.
const FAILED_SERVER_MS = 30_000;
const failedUntil = new Map<string, number>();

/**
 * Connects to the first next hop that can be reached: in configured order, except that one which failed in the
 * last FAILED_SERVER_MS comes after the others. Only a connection that cannot be made (or greeted) moves on; a
 * next hop that answers is used.
 */
async function connectFirstReachable(
  servers: Array<{ host: string; port: number }>,
  opts: SmtpClientOptions,
): Promise<SmtpClient> {
  const now = Date.now();
  const key = (s: { host: string; port: number }) => `${s.host}:${s.port}`;
  const order = [...servers].sort(
    (a, b) => Number((failedUntil.get(key(a)) ?? 0) > now) - Number((failedUntil.get(key(b)) ?? 0) > now),
  );
  let last: unknown;
  for (const server of order) {
    try {
      const client = await SmtpClient.connect({ ...opts, host: server.host, port: server.port });
      failedUntil.delete(key(server));
      return client;
    } catch (err) {
      failedUntil.set(key(server), Date.now() + FAILED_SERVER_MS);
      last = err;
    }
  }
  throw last;
}

/** SMTP or LMTP next hop over pooled connections, as a before-queue proxy (see next-hop.ts). */
export class SmtpNextHop implements NextHop {
  readonly maxRecipients: number;
  /** The connections (exposed for stats and tests). */
  readonly pool: NextHopPool;

  constructor(
    readonly cfg: SmtpHopConfig,
    heloName: string,
  ) {
    // LMTP answers each recipient after the final dot; one SMTP reply to the edge's client cannot carry more
    // than one such answer.
    this.maxRecipients = cfg.type === 'lmtp' ? 1 : 0;
    const servers = [{ host: cfg.host, port: cfg.port }, ...cfg.failover];
    this.pool = new NextHopPool(
      {
        host: cfg.host,
        port: cfg.port,
        lmtp: cfg.type === 'lmtp',
        heloName,
        timeoutMs: cfg.timeoutMs,
        opportunisticTls: cfg.opportunisticTls,
        maxConnections: cfg.pool.maxConnections,
        idleTimeoutMs: cfg.pool.idleTimeoutMs,
      },
      (opts) => connectFirstReachable(servers, opts),
    );
  }

  describe(): string {
    const more = this.cfg.failover.map((f) => `${f.host}:${f.port}`);
    return `${this.cfg.type}://${this.cfg.host}:${this.cfg.port}${more.length ? ` (failover ${more.join(', ')})` : ''}`;
  }

  begin(envelope: HopEnvelope): HopTransaction {
    return new SmtpHopTransaction(this.pool, envelope);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * new: nothing sent yet, no connection. rcpt: MAIL FROM accepted, recipients being offered. refused: MAIL
 * FROM refused (connection already given back). data: DATA sent (354 awaited or message streaming).
 * committing: final dot sent. done: over (connection given back). failed: the next hop was lost.
 */
type Phase = 'new' | 'rcpt' | 'refused' | 'data' | 'committing' | 'done' | 'failed' | 'aborted';

// While the client sends its message, the next hop's transaction waits (the message goes to the next hop once
// the DATA checks passed). A NOOP this often keeps the next hop from timing the connection out meanwhile
// (Postfix: smtpd_timeout 300 s).
const KEEPALIVE_MS = 60_000;

/**
 * One transaction at the next hop. Calls are serialized (a call waits for the one before it), except
 * abort(), which takes effect at once when a message is being sent.
 */
class SmtpHopTransaction implements HopTransaction {
  private phase: Phase = 'new';
  private client: SmtpClient | undefined;
  private mailRefusal: HopReply | undefined;
  private failure: DeliveryError | undefined;
  private stream: Writable | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private keepAlive: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: NextHopPool,
    private readonly envelope: HopEnvelope,
  ) {}

  rcpt(address: string): Promise<HopReply> {
    return this.serial(async () => {
      if (this.phase === 'new') await this.open();
      if (this.mailRefusal) return this.mailRefusal;
      const client = this.need('rcpt');
      try {
        return await client.command(`RCPT TO:<${address}>`);
      } catch (err) {
        throw this.fail(err);
      }
    });
  }

  data(): Promise<{ stream: Writable } | { refused: HopReply }> {
    return this.serial(async () => {
      if (this.mailRefusal) return { refused: this.mailRefusal };
      const client = this.need('rcpt');
      // From here on an abort drops the connection: once DATA is sent, a 354 may be on its way.
      this.phase = 'data';
      let reply: HopReply;
      try {
        reply = await client.command('DATA');
      } catch (err) {
        throw this.fail(err);
      }
      this.need('data');
      if (reply.code === 354) {
        this.stream = client.beginData();
        return { stream: this.stream };
      }
      this.phase = 'done';
      // The caller has its answer; the reset runs behind it.
      void this.reset();
      return { refused: reply };
    });
  }

  commit(): Promise<HopReply> {
    return this.serial(async () => {
      const client = this.need('data');
      if (!this.stream) throw new DeliveryError('commit() without a message stream', 'queue.nexthop_failed');
      this.phase = 'committing';
      let replies: HopReply[];
      try {
        // Waits for the stream's 'finish' first, then sends the final dot.
        replies = await client.endData();
      } catch (err) {
        throw this.fail(err);
      }
      this.phase = 'done';
      // Whatever the final reply (2xx, 4xx or 5xx), the transaction is over and the connection can go on.
      this.releaseClient(true);
      // LMTP: one reply per accepted recipient; with several (not the edge's case: maxRecipients 1), the first
      // refusal is what the single reply to the edge's client must carry.
      const final = replies.find((r) => r.code < 200 || r.code >= 300) ?? replies[0];
      if (!final) throw new DeliveryError('next hop gave no final reply', 'queue.nexthop_failed');
      return final;
    });
  }

  abort(): void {
    const phase = this.phase;
    if (phase === 'done' || phase === 'failed' || phase === 'aborted') return;
    this.phase = 'aborted';
    if (phase === 'data' || phase === 'committing') {
      // DATA was sent: the next hop drops a partial message only when the connection drops. Never send the
      // final dot, never reuse the connection.
      this.stream?.destroy();
      this.releaseClient(false);
      return;
    }
    // Before DATA: RSET once the command in flight (if any) is answered, then reuse the connection.
    this.chain = this.chain.then(() => this.reset());
  }

  /** Acquires a connection and sends MAIL FROM (retried once on a fresh connection, see below). */
  private async open(): Promise<void> {
    try {
      let client = await this.acquire({});
      if (!client) return;
      const reused = this.pool.reused(client);
      let reply: HopReply | undefined;
      let lost = false;
      try {
        reply = await this.mailFrom(client);
      } catch (err) {
        if (!(err instanceof DeliveryError) || !reused) throw err;
        lost = true;
      }
      // A pooled connection may have been closed by the next hop while idle (its idle timeout, a restart).
      // Nothing of this transaction was sent yet, so one retry on a new connection is safe.
      if (reused && (lost || reply?.code === 421)) {
        this.need('new');
        this.releaseClient(false);
        client = await this.acquire({ fresh: true });
        if (!client) return;
        reply = await this.mailFrom(client);
      }
      // undefined: refused without asking (SMTPUTF8).
      if (!reply) return;
      this.need('new');
      if (reply.code >= 200 && reply.code < 300) {
        this.phase = 'rcpt';
        this.keepAlive = setInterval(() => this.noop(), KEEPALIVE_MS);
        this.keepAlive.unref();
      } else {
        this.refuse(reply);
      }
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** Keeps the waiting transaction alive at the next hop (see KEEPALIVE_MS). */
  private noop(): void {
    if (this.phase !== 'rcpt') {
      clearInterval(this.keepAlive);
      return;
    }
    void this.serial(async () => {
      if (this.phase !== 'rcpt' || !this.client) return;
      try {
        await this.client.command('NOOP');
      } catch (err) {
        this.fail(err);
      }
    });
  }

  /** A connection from the pool, held by this transaction; undefined (and given back) when aborted meanwhile. */
  private async acquire(opts: { fresh?: boolean }): Promise<SmtpClient | undefined> {
    const client = await this.pool.acquire(opts);
    this.client = client;
    if (this.phase === 'aborted') {
      this.releaseClient(true);
      return undefined;
    }
    return client;
  }

  /** MAIL FROM; undefined when the transaction was refused without asking (SMTPUTF8). */
  private async mailFrom(client: SmtpClient): Promise<HopReply | undefined> {
    const { from, size, body8bit, smtputf8 } = this.envelope;
    // SmtpClient leaves out SMTPUTF8 when the hop does not advertise it; such a message must not be sent
    // at all: every rcpt() is answered with the synthesized refusal instead.
    if (smtputf8 && !client.extensions.smtpUtf8) {
      this.refuse(SMTPUTF8_REFUSAL);
      return undefined;
    }
    return client.mailFrom(from, { size, body8bit, smtputf8 });
  }

  /** MAIL FROM was refused: every rcpt() gets the refusal; the connection is clean and goes back. */
  private refuse(reply: HopReply): void {
    this.mailRefusal = reply;
    this.phase = 'refused';
    this.releaseClient(true);
  }

  /** RSET, then back to the pool when it was accepted (else the connection is dropped). */
  private async reset(): Promise<void> {
    const client = this.client;
    if (!client) return;
    try {
      const reply = await client.command('RSET');
      this.releaseClient(reply.code === 250);
    } catch {
      this.releaseClient(false);
    }
  }

  /** Throws unless the transaction is in the expected phase (abort or failure came in between). */
  private need(phase: Phase): SmtpClient {
    if (this.phase === 'aborted') {
      throw new DeliveryError('the next hop transaction was aborted', 'queue.nexthop_failed');
    }
    if (this.failure) throw this.failure;
    if (this.phase !== phase || !this.client) {
      throw new DeliveryError(
        `next hop transaction: unexpected call (${this.phase})`,
        'queue.nexthop_failed',
      );
    }
    return this.client;
  }

  /** The next hop was lost: the connection is dropped, later calls reject with the same error. */
  private fail(err: unknown): DeliveryError {
    const failure =
      err instanceof DeliveryError
        ? err
        : new DeliveryError(`next hop: ${(err as Error)?.message ?? String(err)}`, 'queue.nexthop_failed');
    // After abort() the reset queued behind this call deals with the connection (RSET, or drop it when the
    // connection is gone or a message was started).
    if (this.phase === 'aborted') return failure;
    this.phase = 'failed';
    this.failure ??= failure;
    this.releaseClient(false);
    return failure;
  }

  private releaseClient(reusable: boolean): void {
    clearInterval(this.keepAlive);
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    this.pool.release(client, reusable);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
