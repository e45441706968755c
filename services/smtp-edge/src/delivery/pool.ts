import { DeliveryError } from './next-hop.js';
import { SmtpClient, type SmtpClientOptions } from './smtp-client.js';

export interface NextHopPoolOptions extends SmtpClientOptions {
  /** Most connections open at once (busy, idle and being opened). */
  maxConnections: number;
  /** An idle connection is closed (QUIT) after this long. */
  idleTimeoutMs: number;
}

export interface NextHopPoolStats {
  /** Connections counted against maxConnections: busy, idle and being opened. */
  open: number;
  idle: number;
  /** acquire() calls waiting for a connection. */
  waiting: number;
  /** Connections opened since the pool was made (successfully or not). */
  created: number;
}

interface Waiter {
  resolve(client: SmtpClient): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  settled: boolean;
}

interface Entry {
  /** Set while the connection is idle in the pool. */
  idleTimer: NodeJS.Timeout | undefined;
  /** The connection went through the pool before (it may have been closed by the next hop meanwhile). */
  reused: boolean;
}

/**
 * Connections to the next hop, reused between transactions. A connection is either busy (held by one
 * transaction between acquire() and release()) or idle. Waiters are served in FIFO order.
 */
export class NextHopPool {
  private readonly entries = new Map<SmtpClient, Entry>();
  /** Idle connections, most recently released last (taken first: the likeliest to be alive). */
  private readonly idle: SmtpClient[] = [];
  private readonly waiters: Waiter[] = [];
  private connecting = 0;
  private created = 0;
  private closed = false;

  constructor(
    private readonly opts: NextHopPoolOptions,
    private readonly connect: (opts: SmtpClientOptions) => Promise<SmtpClient> = (o) => SmtpClient.connect(o),
  ) {}

  /**
   * A connection for one transaction: an idle usable one, else a new one while fewer than maxConnections
   * are open, else the next one released, waiting up to timeoutMs. `fresh` skips the idle connections (an
   * idle one is closed to make room when the pool is full): used to retry after a reused connection turned
   * out to be dead, when the other idle ones are suspect too. Rejects with DeliveryError.
   */
  acquire(opts: { fresh?: boolean } = {}): Promise<SmtpClient> {
    if (this.closed) return Promise.reject(new DeliveryError('next hop pool closed', 'queue.nexthop_failed'));
    if (!opts.fresh) {
      const client = this.takeIdle();
      if (client) return Promise.resolve(client);
    } else if (this.open >= this.opts.maxConnections) {
      const oldest = this.idle[0];
      if (oldest) this.discard(oldest);
    }
    if (this.open < this.opts.maxConnections) return this.openConnection();
    return new Promise<SmtpClient>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        settled: false,
        timer: setTimeout(() => {
          waiter.settled = true;
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(
            new DeliveryError(
              `no connection to the next hop free within ${this.opts.timeoutMs} ms`,
              'queue.nexthop_failed',
            ),
          );
        }, this.opts.timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /**
   * Gives a connection back. `reusable`: the transaction completed (final reply read) or was reset (250 to
   * RSET); otherwise, or when the connection is no longer usable, it is closed. Releasing a connection the
   * pool does not hold (already released or discarded) does nothing.
   */
  release(client: SmtpClient, reusable: boolean): void {
    const entry = this.entries.get(client);
    if (!entry || entry.idleTimer || this.idle.includes(client)) return;
    if (!reusable || !client.usable || this.closed) {
      this.discard(client);
      return;
    }
    entry.reused = true;
    const waiter = this.nextWaiter();
    if (waiter) {
      this.settle(waiter, client);
      return;
    }
    entry.idleTimer = setTimeout(() => this.discard(client), this.opts.idleTimeoutMs);
    entry.idleTimer.unref();
    this.idle.push(client);
  }

  /** The connection went through the pool before (idle, or handed from one transaction to the next). */
  reused(client: SmtpClient): boolean {
    return this.entries.get(client)?.reused ?? false;
  }

  stats(): NextHopPoolStats {
    return { open: this.open, idle: this.idle.length, waiting: this.waiters.length, created: this.created };
  }

  /** Closes every connection (idle ones with QUIT, busy ones at once) and rejects the waiters. */
  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) {
      waiter.settled = true;
      clearTimeout(waiter.timer);
      waiter.reject(new DeliveryError('next hop pool closed', 'queue.nexthop_failed'));
    }
    const quits: Promise<void>[] = [];
    for (const [client, entry] of [...this.entries]) {
      this.entries.delete(client);
      clearTimeout(entry.idleTimer);
      quits.push(entry.idleTimer ? client.quit() : Promise.resolve(client.close()));
    }
    this.idle.length = 0;
    await Promise.all(quits);
  }

  private get open(): number {
    return this.entries.size + this.connecting;
  }

  private takeIdle(): SmtpClient | undefined {
    for (let client = this.idle.pop(); client; client = this.idle.pop()) {
      const entry = this.entries.get(client);
      if (!entry) continue;
      clearTimeout(entry.idleTimer);
      entry.idleTimer = undefined;
      if (client.usable) return client;
      this.discard(client);
    }
    return undefined;
  }

  private async openConnection(): Promise<SmtpClient> {
    this.connecting++;
    this.created++;
    let client: SmtpClient;
    try {
      client = await this.connect(this.opts);
    } catch (err) {
      this.connecting--;
      this.pump();
      throw err;
    }
    this.connecting--;
    if (this.closed) {
      client.close();
      throw new DeliveryError('next hop pool closed', 'queue.nexthop_failed');
    }
    this.entries.set(client, { idleTimer: undefined, reused: false });
    // A connection the next hop closes while idle frees its slot at once.
    client.onClose(() => this.discard(client));
    return client;
  }

  /** Forgets a connection and closes it (QUIT when it sat idle); a waiter may then get its slot. */
  private discard(client: SmtpClient): void {
    const entry = this.entries.get(client);
    if (!entry) return;
    this.entries.delete(client);
    const i = this.idle.indexOf(client);
    if (i >= 0) this.idle.splice(i, 1);
    clearTimeout(entry.idleTimer);
    if (entry.idleTimer) void client.quit();
    else client.close();
    this.pump();
  }

  /** Opens connections for waiters while there is room. */
  private pump(): void {
    while (!this.closed && this.open < this.opts.maxConnections) {
      const waiter = this.nextWaiter();
      if (!waiter) return;
      this.openConnection().then(
        (client) => this.settle(waiter, client),
        (err: Error) => {
          if (waiter.settled) return;
          waiter.settled = true;
          clearTimeout(waiter.timer);
          waiter.reject(err);
        },
      );
    }
  }

  private nextWaiter(): Waiter | undefined {
    return this.waiters.shift();
  }

  /** Hands a connection to a waiter; one that timed out meanwhile gives it back to the pool. */
  private settle(waiter: Waiter, client: SmtpClient): void {
    if (waiter.settled) {
      this.release(client, true);
      return;
    }
    waiter.settled = true;
    clearTimeout(waiter.timer);
    waiter.resolve(client);
  }
}
