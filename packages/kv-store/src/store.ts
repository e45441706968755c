/**
 * One named bucket of JSON values. Every write stamps the key, and a key not written for the bucket's
 * maxAgeSeconds is gone (NATS KV max age semantics: age = time since the last write).
 *
 * update applies fn atomically: read, compute, write with compare-and-set, and on conflict read again and re-run
 * fn (so fn must be pure). Two processes updating the same key never lose an update. fn returning undefined
 * deletes the key (or leaves it absent); `keep` leaves the key exactly as it is (no write, no new stamp).
 */
export interface KvBucket<T> {
  readonly name: string;
  get(key: string): Promise<T | undefined>;
  update(key: string, fn: (current: T | undefined) => T | undefined | typeof KEEP): Promise<T | undefined>;
  delete(key: string): Promise<boolean>;
  /** Keys and values whose key starts with prefix (all when empty), at most limit. O(keys): admin use only. */
  entries(prefix: string, limit: number): Promise<Array<[string, T]>>;
  /** Visits the live keys, stopping when visit returns false. O(keys): admin listings and stats only. */
  keys(visit: (key: string) => boolean): Promise<void>;
}

/** Returned by an update function: leave the key as it is. */
export const KEEP: unique symbol = Symbol('keep');

export interface BucketOptions {
  /** Keys not written for this long are forgotten; 0: never. */
  maxAgeSeconds: number;
}

/** Where buckets live: a file journal for one process, or NATS JetStream KV shared by replicas. */
export interface KvStore {
  bucket<T>(name: string, opts: BucketOptions): Promise<KvBucket<T>>;
  close(): Promise<void>;
}

/** Bucket names: letters, digits, '-' and '_' (what NATS KV allows). */
export function checkBucketName(name: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`kv-store: bad bucket name "${name}"`);
  return name;
}
