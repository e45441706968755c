import type { NatsConnection } from '@nats-io/transport-node';
import { type KvBucket, NatsKvStore } from '@smtpguard/kv-store';
import type { ClientRecord, GreylistStore, TripletRecord, WhitelistKind, WhitelistRecord } from './store.js';

export { decodeKey, encodeKey, isTransient, MAX_UPDATE_ATTEMPTS } from '@smtpguard/kv-store';

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
  /** How long a read or write is tried again while NATS cannot answer it (see @smtpguard/kv-store). Default 0. */
  retryMs?: number;
}

/** At most this many gets in flight while listing or counting by value. */
const SCAN_CONCURRENCY = 64;

const wlKey = (kind: WhitelistKind, value: string) => `${kind}:${value.toLowerCase()}`;

/**
 * Greylist store shared by several greylist replicas: three buckets of @smtpguard/kv-store's NATS JetStream KV
 * store, one per lifetime class, since 2.9 servers have no per-key TTL:
 *
 * - `<prefix>_triplets` and `<prefix>_clients`, max age = expirySeconds. Every update rewrites the key,
 *   so a key's age is the time since it was last seen, which is exactly the expiry rule; the server
 *   drops expired keys by itself (no sweep).
 * - `<prefix>_whitelist`, no max age.
 *
 * Updates are atomic across replicas (compare-and-set on the key's revision, again on conflict; see
 * @smtpguard/kv-store). Errors from NATS (unreachable, timeouts) are never swallowed: they reach the gRPC
 * handler, and the edge applies the check's failure mode.
 */
export class NatsKvGreylistStore implements GreylistStore {
  private constructor(
    private readonly store: NatsKvStore,
    private readonly triplets: KvBucket<TripletRecord>,
    private readonly clients: KvBucket<ClientRecord>,
    private readonly whitelist: KvBucket<WhitelistRecord>,
    /** Bucket names, for messages and tests. */
    readonly buckets: { triplets: string; clients: string; whitelist: string },
  ) {}

  /** Connects (unless opts.nc is given) and creates the buckets that are missing. */
  static async open(opts: NatsKvStoreOptions): Promise<NatsKvGreylistStore> {
    const store = await NatsKvStore.open({
      servers: opts.servers,
      nc: opts.nc,
      prefix: opts.bucketPrefix,
      connectTimeoutMs: opts.connectTimeoutMs,
      requestTimeoutMs: opts.requestTimeoutMs,
      replicas: opts.replicas,
      name: opts.name ?? 'smtpguard-greylist',
      retryMs: opts.retryMs,
    });
    try {
      const [triplets, clients, whitelist] = await Promise.all([
        store.bucket<TripletRecord>('triplets', { maxAgeSeconds: opts.expirySeconds }),
        store.bucket<ClientRecord>('clients', { maxAgeSeconds: opts.expirySeconds }),
        store.bucket<WhitelistRecord>('whitelist', { maxAgeSeconds: 0 }),
      ]);
      return new NatsKvGreylistStore(store, triplets, clients, whitelist, {
        triplets: triplets.name,
        clients: clients.name,
        whitelist: whitelist.name,
      });
    } catch (err) {
      await store.close().catch(() => undefined);
      throw err;
    }
  }

  /** Keys and values of the given keys (those deleted meanwhile are left out), in the given order. */
  private async values<T>(bucket: KvBucket<T>, keys: string[]): Promise<Array<[string, T]>> {
    const out: Array<[string, T] | undefined> = new Array(keys.length);
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const i = next++;
        const key = keys[i] as string;
        const value = await bucket.get(key);
        if (value !== undefined) out[i] = [key, value];
      }
    };
    await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, keys.length) }, worker));
    return out.filter((e): e is [string, T] => e !== undefined);
  }

  private async allValues<T>(bucket: KvBucket<T>): Promise<Array<[string, T]>> {
    const keys: string[] = [];
    await bucket.keys((k) => {
      keys.push(k);
      return true;
    });
    return this.values(bucket, keys);
  }

  getTriplet(key: string): Promise<TripletRecord | undefined> {
    return this.triplets.get(key);
  }

  async updateTriplet(
    key: string,
    fn: (current: TripletRecord | undefined) => TripletRecord,
  ): Promise<TripletRecord> {
    return (await this.triplets.update(key, fn)) as TripletRecord;
  }

  deleteTriplet(key: string): Promise<boolean> {
    return this.triplets.delete(key);
  }

  /** Scans the keys until limit matches, then reads the values of those. */
  async listTriplets(query: string, limit: number): Promise<Array<[string, TripletRecord]>> {
    if (limit <= 0) return [];
    const matches: string[] = [];
    await this.triplets.keys((k) => {
      if (!query || k.includes(query)) matches.push(k);
      return matches.length < limit;
    });
    return this.values(this.triplets, matches);
  }

  /** Scans every key. */
  async countTriplets(): Promise<number> {
    let n = 0;
    await this.triplets.keys(() => {
      n++;
      return true;
    });
    return n;
  }

  getClient(client: string): Promise<ClientRecord | undefined> {
    return this.clients.get(client);
  }

  async updateClient(
    client: string,
    fn: (current: ClientRecord | undefined) => ClientRecord,
  ): Promise<ClientRecord> {
    return (await this.clients.update(client, fn)) as ClientRecord;
  }

  /** Scans every key and reads every value (one get per client): for stats, not the hot path. */
  async countClients(deliveries: number): Promise<number> {
    const all = await this.allValues(this.clients);
    return all.filter(([, c]) => c.deliveries >= deliveries).length;
  }

  /** Scans every key and reads every value; the whitelist is small. */
  async listWhitelist(): Promise<WhitelistRecord[]> {
    return (await this.allValues(this.whitelist)).map(([, v]) => v);
  }

  async addWhitelist(entry: WhitelistRecord): Promise<void> {
    await this.whitelist.update(wlKey(entry.kind, entry.value), () => entry);
  }

  removeWhitelist(kind: WhitelistKind, value: string): Promise<boolean> {
    return this.whitelist.delete(wlKey(kind, value));
  }

  /**
   * Drains the connection when the store opened it; a connection given to open() stays open. A drain cannot
   * finish while NATS is unreachable, so after drainTimeoutMs the connection is closed outright.
   */
  close(drainTimeoutMs = 2000): Promise<void> {
    return this.store.close(drainTimeoutMs);
  }
}
