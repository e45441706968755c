import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { type KV, type KvEntry, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection, nanos } from '@nats-io/transport-node';
import { type BucketOptions, checkBucketName, KEEP, type KvBucket, type KvStore } from './store.js';

export interface NatsKvStoreOptions {
  /** NATS server URLs; ignored when nc is given. */
  servers?: string[];
  /** An open connection to use (close() then leaves it open). */
  nc?: NatsConnection;
  /** Bucket names get this prefix: <prefix>_<name>. */
  prefix: string;
  connectTimeoutMs?: number;
  /** Timeout of each JetStream request. Default: connectTimeoutMs, else 2000. */
  requestTimeoutMs?: number;
  /** Replicas of newly created buckets (1, 3 or 5). */
  replicas?: number;
  /** Connection name shown by the server. */
  name?: string;
  /**
   * How long a read or write is tried again while NATS cannot answer it (a server lost, a new stream leader being
   * elected, a reconnect): transient errors only (isTransient), 50 ms doubling to 500 ms apart. 0: never again.
   * Default 0.
   */
  retryMs?: number;
}

/** Errors of a NATS cluster in transition (no leader yet, no server answering, a reconnect): worth trying again. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (
    ['JetStreamNotEnabled', 'TimeoutError', 'NoRespondersError', 'RequestError', 'ConnectionError'].includes(
      err.name,
    )
  )
    return true;
  // 503: "JetStream system temporarily unavailable", no stream leader; 408: request timed out on the server.
  const status = (err as { status?: unknown; code?: unknown }).status ?? (err as { code?: unknown }).code;
  return (
    (err.name === 'JetStreamApiError' || err.name === 'JetStreamStatusError') &&
    (status === 503 || status === 408)
  );
}

/**
 * Runs op, again on transient errors (and those `opts.also` accepts), 50, 100, 200, 400, 500, 500... ms apart,
 * until retryMs has passed.
 */
async function withRetry<T>(
  nc: NatsConnection,
  retryMs: number,
  op: () => Promise<T>,
  opts: { also?: (err: unknown) => boolean } = {},
): Promise<T> {
  const until = Date.now() + retryMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      const pause = Math.min(50 * 2 ** attempt, 500);
      const again = isTransient(err) || opts.also?.(err) === true;
      if (!again || nc.isClosed() || Date.now() + pause > until) throw err;
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

/** How many times update re-reads and re-applies fn after a compare-and-set conflict before giving up. */
export const MAX_UPDATE_ATTEMPTS = 50;

interface Stored<T> {
  k: string;
  v: T;
}

/** KV keys allow only [-/_=.a-zA-Z0-9]: each key is stored as base64url of its UTF-8 bytes. */
export function encodeKey(key: string): string {
  if (!key) throw new Error('kv-store: empty key');
  return Buffer.from(key, 'utf8').toString('base64url');
}

export function decodeKey(encoded: string): string {
  return Buffer.from(encoded, 'base64url').toString('utf8');
}

const isConflict = (err: unknown): boolean =>
  err instanceof JetStreamApiError &&
  (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
    err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

const live = (e: KvEntry | null): e is KvEntry => e !== null && e.operation === 'PUT';

/**
 * Buckets shared by replicas: one NATS JetStream KV bucket per name (<prefix>_<name>), history 1, max age =
 * the bucket's maxAgeSeconds (every write rewrites the key, so the server drops keys not written for that long
 * by itself). update is atomic across replicas: get (with its revision), fn, then create (absent) or update at
 * that revision (present); the server refuses the write when another replica wrote the key since the read, and
 * the cycle runs again, at most MAX_UPDATE_ATTEMPTS times. Within one process the updates of a key are queued,
 * so only replicas contend. NATS errors are never swallowed.
 */
export class NatsKvStore implements KvStore {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly owns: boolean,
    private readonly kvm: Kvm,
    private readonly jsm: JetStreamManager,
    private readonly opts: NatsKvStoreOptions,
    private readonly timeout: number,
  ) {}

  static async open(opts: NatsKvStoreOptions): Promise<NatsKvStore> {
    const timeout = opts.requestTimeoutMs ?? opts.connectTimeoutMs ?? 2000;
    let nc = opts.nc;
    const owns = !nc;
    if (!nc) {
      if (!opts.servers?.length) throw new Error('kv-store: no NATS server given');
      nc = await connect({
        servers: opts.servers,
        name: opts.name ?? 'smtpguard-kv',
        timeout: opts.connectTimeoutMs ?? 2000,
        noAsyncTraces: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1000,
      });
    }
    try {
      const js = jetstream(nc, { timeout });
      const jsm = await jetstreamManager(nc, { timeout });
      return new NatsKvStore(nc, owns, new Kvm(js), jsm, opts, timeout);
    } catch (err) {
      if (owns) await nc.close().catch(() => undefined);
      throw err;
    }
  }

  /** The open connection (for subscriptions next to the buckets). */
  get connection(): NatsConnection {
    return this.nc;
  }

  async bucket<T>(name: string, opts: BucketOptions): Promise<KvBucket<T>> {
    const full = checkBucketName(`${this.opts.prefix}_${name}`);
    const maxAgeMs = opts.maxAgeSeconds * 1000;
    // On a cluster that just formed, the stream a replicated bucket is created as may not be found for a moment
    // (its raft group still electing): creating (idempotent) and aligning are asked again for up to the request
    // timeout (at least 2 s), then the error stands.
    const settling = { also: (err: unknown) => /stream not found/i.test((err as Error)?.message ?? '') };
    const kv = await withRetry(
      this.nc,
      Math.max(this.timeout, 2000),
      () =>
        this.kvm.create(full, {
          history: 1,
          ttl: maxAgeMs,
          replicas: this.opts.replicas ?? 1,
          timeout: this.timeout,
        }),
      settling,
    );
    await withRetry(
      this.nc,
      Math.max(this.timeout, 2000),
      () => alignMaxAge(this.jsm, `KV_${full}`, maxAgeMs),
      settling,
    );
    return new NatsBucket<T>(full, kv, <R>(op: () => Promise<R>) =>
      withRetry(this.nc, this.opts.retryMs ?? 0, op),
    );
  }

  /**
   * Drains the connection when the store opened it (one given to open() stays open). A drain cannot finish while
   * NATS is unreachable (the client keeps reconnecting), so after drainTimeoutMs the connection is closed outright.
   */
  async close(drainTimeoutMs = 2000): Promise<void> {
    if (!this.owns || this.nc.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    const drained = this.nc.isDraining() ? this.nc.closed() : this.nc.drain();
    const timedOut = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), drainTimeoutMs);
    });
    try {
      if ((await Promise.race([drained.then(() => 'drained' as const), timedOut])) === 'timeout')
        await this.nc.close();
    } catch (err) {
      // The drain failed: close anyway, and report why.
      await this.nc.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}

class NatsBucket<T> implements KvBucket<T> {
  constructor(
    readonly name: string,
    private readonly kv: KV,
    /** Each request to NATS goes through io (retried while NATS is in transition). */
    private readonly io: <R>(op: () => Promise<R>) => Promise<R>,
  ) {}

  /**
   * The update running or queued last for each key in this process. A process's own updates of one key run one
   * after the other, so compare-and-set only ever races against other processes (replicas): a hot key (one
   * account's counter, one client network's greylist record) is not a crowd of callers of this process losing
   * to each other until MAX_UPDATE_ATTEMPTS.
   */
  private readonly queues = new Map<string, Promise<unknown>>();

  private async read(key: string): Promise<{ value: T | undefined; entry: KvEntry | null }> {
    const entry = await this.io(() => this.kv.get(encodeKey(key)));
    if (!live(entry)) return { value: undefined, entry };
    let stored: Stored<T>;
    try {
      stored = entry.json<Stored<T>>();
    } catch (err) {
      throw new Error(`kv-store: ${this.name} key ${key} holds a value that is not JSON`, { cause: err });
    }
    if (typeof stored !== 'object' || stored === null || stored.k !== key || stored.v === undefined)
      throw new Error(`kv-store: ${this.name} key ${key} holds an unexpected value`);
    return { value: stored.v, entry };
  }

  async get(key: string): Promise<T | undefined> {
    return (await this.read(key)).value;
  }

  update(key: string, fn: (current: T | undefined) => T | undefined | typeof KEEP): Promise<T | undefined> {
    const previous = this.queues.get(key);
    const run = previous
      ? previous.then(
          () => this.updateNow(key, fn),
          () => this.updateNow(key, fn),
        )
      : this.updateNow(key, fn);
    const settled = run.catch(() => undefined);
    this.queues.set(key, settled);
    void settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key);
    });
    return run;
  }

  private async updateNow(
    key: string,
    fn: (current: T | undefined) => T | undefined | typeof KEEP,
  ): Promise<T | undefined> {
    const ek = encodeKey(key);
    for (let attempt = 1; ; attempt++) {
      const { value, entry } = await this.read(key);
      const next = fn(value);
      if (next === KEEP) return value;
      try {
        if (next === undefined) {
          if (live(entry)) await this.io(() => this.kv.delete(ek, { previousSeq: entry.revision }));
          return undefined;
        }
        const data = JSON.stringify({ k: key, v: next } satisfies Stored<T>);
        // A delete marker still has a revision: writing over it is an update at that revision.
        if (entry) await this.io(() => this.kv.update(ek, data, entry.revision));
        else await this.io(() => this.kv.create(ek, data));
        return next;
      } catch (err) {
        if (!isConflict(err)) throw err;
        if (attempt >= MAX_UPDATE_ATTEMPTS)
          throw new Error(`kv-store: ${this.name} key ${key} still conflicting after ${attempt} attempts`, {
            cause: err,
          });
        // Another replica wrote the key since our read. A short random pause spreads contenders out.
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(attempt, 10)));
      }
    }
  }

  async delete(key: string): Promise<boolean> {
    let deleted = false;
    await this.update(key, (cur) => {
      deleted = cur !== undefined;
      return undefined;
    });
    return deleted;
  }

  /** One ordered consumer that delivers the headers of every key's last message: O(keys) messages. */
  async keys(visit: (key: string) => boolean): Promise<void> {
    const iter = await this.kv.keys();
    try {
      for await (const ek of iter) if (!visit(decodeKey(ek))) break;
    } finally {
      iter.stop();
    }
  }

  async entries(prefix: string, limit: number): Promise<Array<[string, T]>> {
    const keys: string[] = [];
    if (limit <= 0) return [];
    await this.keys((k) => {
      if (k.startsWith(prefix)) keys.push(k);
      return keys.length < limit;
    });
    const out: Array<[string, T]> = [];
    for (const k of keys) {
      const v = await this.get(k);
      if (v !== undefined) out.push([k, v]);
    }
    return out;
  }
}

/** An existing bucket keeps its data, but its max age follows the configuration. */
async function alignMaxAge(jsm: JetStreamManager, stream: string, maxAgeMs: number): Promise<void> {
  const info = await jsm.streams.info(stream);
  const want = maxAgeMs > 0 ? nanos(maxAgeMs) : 0;
  if (info.config.max_age === want) return;
  await jsm.streams.update(stream, { ...info.config, max_age: want });
}
