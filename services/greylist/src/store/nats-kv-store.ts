import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { Bucket, type KV, type KvEntry, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection, nanos } from '@nats-io/transport-node';
import type { ClientRecord, GreylistStore, TripletRecord, WhitelistKind, WhitelistRecord } from './store.js';

export interface NatsKvStoreOptions {
  /** NATS server URLs; ignored when nc is given. */
  servers?: string[];
  /** An open connection to use (close() then leaves it open); otherwise the store connects itself. */
  nc?: NatsConnection;
  /** Buckets are <prefix>_triplets, <prefix>_clients and <prefix>_whitelist. */
  bucketPrefix: string;
  /** Max age of triplets and clients: every update rewrites the key, so age = time since last seen. */
  expirySeconds: number;
  connectTimeoutMs?: number;
  /** Timeout of each JetStream request (get, put, stream info). Default: connectTimeoutMs, else 2000. */
  requestTimeoutMs?: number;
  /** Replicas of newly created buckets (1, 3 or 5; a NATS cluster is needed beyond 1). */
  replicas?: number;
  /** Connection name shown by the server. */
  name?: string;
  /**
   * How long a read or write is tried again while NATS cannot answer it (a server lost, a new stream leader being
   * elected, a reconnect): transient errors only. 0: never again. Default 0.
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

/** How many times update* re-reads and re-applies fn after a compare-and-set conflict before giving up. */
export const MAX_UPDATE_ATTEMPTS = 50;

/** At most this many gets in flight while listing or counting by value. */
const SCAN_CONCURRENCY = 64;

/** What is stored under each key: the original key (KV keys are encoded) and the record. */
interface Stored<T> {
  k: string;
  v: T;
}

/**
 * KV keys allow only [-/_=.a-zA-Z0-9] and '.' separates tokens, while ours contain | @ : and more:
 * each key is stored as base64url of its UTF-8 bytes, without padding (alphabet [-_a-zA-Z0-9]).
 */
export function encodeKey(key: string): string {
  if (!key) throw new Error('greylist store: empty key');
  return Buffer.from(key, 'utf8').toString('base64url');
}

export function decodeKey(encoded: string): string {
  return Buffer.from(encoded, 'base64url').toString('utf8');
}

const wlKey = (kind: WhitelistKind, value: string) => `${kind}:${value.toLowerCase()}`;

const isConflict = (err: unknown): boolean =>
  err instanceof JetStreamApiError &&
  (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
    err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

const live = (e: KvEntry | null): e is KvEntry => e !== null && e.operation === 'PUT';

/**
 * Greylist store shared by several greylist replicas: NATS JetStream KV buckets, one per lifetime class,
 * since 2.9 servers have no per-key TTL:
 *
 * - `<prefix>_triplets` and `<prefix>_clients`, max age = expirySeconds. Every update rewrites the key,
 *   so a key's age is the time since it was last seen, which is exactly the expiry rule; the server
 *   drops expired keys by itself (no sweep).
 * - `<prefix>_whitelist`, no max age.
 *
 * History is 1 (only the current value is kept). update* are atomic across replicas: get (with its
 * revision), fn, then create (absent) or update(key, value, revision) (present); the server refuses the
 * write when another replica wrote the key since the read (wrong last sequence), and then the cycle runs
 * again, at most MAX_UPDATE_ATTEMPTS times. Errors from NATS (unreachable, timeouts) are never swallowed:
 * they reach the gRPC handler, and the edge applies the check's failure mode.
 */
export class NatsKvGreylistStore implements GreylistStore {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    private readonly triplets: KV,
    private readonly clients: KV,
    private readonly whitelist: KV,
    /** Bucket names, for messages and tests. */
    readonly buckets: { triplets: string; clients: string; whitelist: string },
    private readonly retryMs: number,
  ) {}

  /** Transient failures retried (50, 100, 200, 400, 500, 500... ms apart) until retryMs has passed. */
  private async io<T>(op: () => Promise<T>): Promise<T> {
    const until = Date.now() + this.retryMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (err) {
        const pause = Math.min(50 * 2 ** attempt, 500);
        if (!isTransient(err) || this.nc.isClosed() || Date.now() + pause > until) throw err;
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }

  /** Connects (unless opts.nc is given) and creates the buckets that are missing. */
  static async open(opts: NatsKvStoreOptions): Promise<NatsKvGreylistStore> {
    const timeout = opts.requestTimeoutMs ?? opts.connectTimeoutMs ?? 2000;
    let nc = opts.nc;
    const owns = !nc;
    if (!nc) {
      if (!opts.servers?.length) throw new Error('greylist store: no NATS server given');
      nc = await connect({
        servers: opts.servers,
        name: opts.name ?? 'smtpguard-greylist',
        timeout: opts.connectTimeoutMs ?? 2000,
        // Request errors without async stack traces: a third of the CPU per check otherwise (pnpm bench).
        noAsyncTraces: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 1000,
      });
    }
    try {
      const js = jetstream(nc, { timeout });
      const jsm = await jetstreamManager(nc, { timeout });
      const kvm = new Kvm(js);
      const names = {
        triplets: `${opts.bucketPrefix}_triplets`,
        clients: `${opts.bucketPrefix}_clients`,
        whitelist: `${opts.bucketPrefix}_whitelist`,
      };
      const ttl = opts.expirySeconds * 1000;
      const bucket = async (name: string, maxAgeMs: number): Promise<KV> => {
        // Creates the bucket when missing; an existing one is opened as it is (its data kept).
        const kv = await kvm.create(name, {
          history: 1,
          ttl: maxAgeMs,
          replicas: opts.replicas ?? 1,
          timeout,
        });
        await alignMaxAge(jsm, `KV_${name}`, maxAgeMs);
        return kv;
      };
      const [triplets, clients, whitelist] = await Promise.all([
        bucket(names.triplets, ttl),
        bucket(names.clients, ttl),
        bucket(names.whitelist, 0),
      ]);
      return new NatsKvGreylistStore(nc, owns, triplets, clients, whitelist, names, opts.retryMs ?? 0);
    } catch (err) {
      if (owns) await nc.close().catch(() => undefined);
      throw err;
    }
  }

  private async read<T>(kv: KV, key: string): Promise<{ value: T | undefined; entry: KvEntry | null }> {
    const entry = await this.io(() => kv.get(encodeKey(key)));
    if (!live(entry)) return { value: undefined, entry };
    return { value: parse<T>(entry, key).v, entry };
  }

  /** Read, compute, compare-and-set; again on conflict. fn may run several times (it is pure). */
  private async update<T>(kv: KV, key: string, fn: (current: T | undefined) => T): Promise<T> {
    const ek = encodeKey(key);
    for (let attempt = 1; ; attempt++) {
      const { value, entry } = await this.read<T>(kv, key);
      const next = fn(value);
      const data = JSON.stringify({ k: key, v: next } satisfies Stored<T>);
      try {
        // A delete marker still has a revision: writing over it is an update at that revision. A write retried
        // after a timeout that did happen meets a conflict, and the cycle reads it back.
        if (entry) await this.io(() => kv.update(ek, data, entry.revision));
        else await this.io(() => kv.create(ek, data));
        return next;
      } catch (err) {
        if (!isConflict(err)) throw err;
        if (attempt >= MAX_UPDATE_ATTEMPTS)
          throw new Error(
            `greylist store: ${bucketName(kv)} key ${key} still conflicting after ${attempt} attempts`,
            { cause: err },
          );
        // Another replica wrote the key since our read. A short random pause spreads contenders out.
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(attempt, 10)));
      }
    }
  }

  /** Deletes the key if present (false when absent); compare-and-set, again on conflict. */
  private async remove(kv: KV, key: string): Promise<boolean> {
    const ek = encodeKey(key);
    for (let attempt = 1; ; attempt++) {
      const entry = await this.io(() => kv.get(ek));
      if (!live(entry)) return false;
      try {
        await this.io(() => kv.delete(ek, { previousSeq: entry.revision }));
        return true;
      } catch (err) {
        if (!isConflict(err) || attempt >= MAX_UPDATE_ATTEMPTS) throw err;
      }
    }
  }

  /**
   * Visits the live keys of a bucket (original keys), stopping when visit returns false. Costs one
   * ordered consumer that delivers the headers of every key's last message: O(keys) messages, fine for
   * admin listings and stats, not for the hot path.
   */
  private async scanKeys(kv: KV, visit: (key: string) => boolean): Promise<void> {
    const iter = await kv.keys();
    try {
      for await (const ek of iter) if (!visit(decodeKey(ek))) break;
    } finally {
      iter.stop();
    }
  }

  /** Keys and values of the given keys (those deleted meanwhile are left out), in the given order. */
  private async values<T>(kv: KV, keys: string[]): Promise<Array<[string, T]>> {
    const out: Array<[string, T] | undefined> = new Array(keys.length);
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const i = next++;
        const key = keys[i] as string;
        const { value } = await this.read<T>(kv, key);
        if (value !== undefined) out[i] = [key, value];
      }
    };
    await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, keys.length) }, worker));
    return out.filter((e): e is [string, T] => e !== undefined);
  }

  private async allValues<T>(kv: KV): Promise<Array<[string, T]>> {
    const keys: string[] = [];
    await this.scanKeys(kv, (k) => {
      keys.push(k);
      return true;
    });
    return this.values<T>(kv, keys);
  }

  async getTriplet(key: string): Promise<TripletRecord | undefined> {
    return (await this.read<TripletRecord>(this.triplets, key)).value;
  }

  updateTriplet(
    key: string,
    fn: (current: TripletRecord | undefined) => TripletRecord,
  ): Promise<TripletRecord> {
    return this.update(this.triplets, key, fn);
  }

  deleteTriplet(key: string): Promise<boolean> {
    return this.remove(this.triplets, key);
  }

  /** Scans the keys (see scanKeys) until limit matches, then reads the values of those. */
  async listTriplets(query: string, limit: number): Promise<Array<[string, TripletRecord]>> {
    if (limit <= 0) return [];
    const matches: string[] = [];
    await this.scanKeys(this.triplets, (k) => {
      if (!query || k.includes(query)) matches.push(k);
      return matches.length < limit;
    });
    return this.values<TripletRecord>(this.triplets, matches);
  }

  /** Scans every key (see scanKeys). */
  async countTriplets(): Promise<number> {
    let n = 0;
    await this.scanKeys(this.triplets, () => {
      n++;
      return true;
    });
    return n;
  }

  async getClient(client: string): Promise<ClientRecord | undefined> {
    return (await this.read<ClientRecord>(this.clients, client)).value;
  }

  updateClient(
    client: string,
    fn: (current: ClientRecord | undefined) => ClientRecord,
  ): Promise<ClientRecord> {
    return this.update(this.clients, client, fn);
  }

  /** Scans every key and reads every value (one get per client): for stats, not the hot path. */
  async countClients(deliveries: number): Promise<number> {
    const all = await this.allValues<ClientRecord>(this.clients);
    return all.filter(([, c]) => c.deliveries >= deliveries).length;
  }

  /** Scans every key and reads every value; the whitelist is small. */
  async listWhitelist(): Promise<WhitelistRecord[]> {
    return (await this.allValues<WhitelistRecord>(this.whitelist)).map(([, v]) => v);
  }

  async addWhitelist(entry: WhitelistRecord): Promise<void> {
    await this.update<WhitelistRecord>(this.whitelist, wlKey(entry.kind, entry.value), () => entry);
  }

  removeWhitelist(kind: WhitelistKind, value: string): Promise<boolean> {
    return this.remove(this.whitelist, wlKey(kind, value));
  }

  /**
   * Drains the connection when the store opened it; a connection given to open() stays open. A drain
   * cannot finish while NATS is unreachable (the client keeps reconnecting), so after drainTimeoutMs the
   * connection is closed outright: every write has been answered or failed by then anyway.
   */
  async close(drainTimeoutMs = 2000): Promise<void> {
    if (!this.ownsConnection || this.nc.isClosed()) return;
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

function parse<T>(entry: KvEntry, key: string): Stored<T> {
  let stored: Stored<T>;
  try {
    stored = entry.json<Stored<T>>();
  } catch (err) {
    throw new Error(`greylist store: ${entry.bucket} key ${key} holds a value that is not JSON`, {
      cause: err,
    });
  }
  if (typeof stored !== 'object' || stored === null || stored.k !== key || stored.v === undefined)
    throw new Error(`greylist store: ${entry.bucket} key ${key} holds an unexpected value`);
  return stored;
}

function bucketName(kv: KV): string {
  return kv instanceof Bucket ? kv.bucket : 'bucket';
}

/**
 * An existing bucket keeps its data, but its max age follows the configuration (expirySeconds may have
 * changed since the bucket was created); nothing is written when it already matches.
 */
async function alignMaxAge(jsm: JetStreamManager, stream: string, maxAgeMs: number): Promise<void> {
  const info = await jsm.streams.info(stream);
  const want = maxAgeMs > 0 ? nanos(maxAgeMs) : 0;
  if (info.config.max_age === want) return;
  await jsm.streams.update(stream, { ...info.config, max_age: want });
}
