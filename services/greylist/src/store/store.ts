/** One triplet as stored. Times are Unix seconds. */
export interface TripletRecord {
  firstSeen: number;
  lastSeen: number;
  /** When the triplet first passed; 0 while greylisted. */
  passedAt: number;
  passCount: number;
}

/** Storage of triplets: the embedded file store, or NATS KV on Kubernetes. */
export interface TripletStore {
  get(key: string): Promise<TripletRecord | undefined>;
  put(key: string, record: TripletRecord): Promise<void>;
  delete(key: string): Promise<boolean>;
  /** Entries whose key contains query (all when empty), at most limit. */
  list(query: string, limit: number): Promise<Array<[string, TripletRecord]>>;
  count(): Promise<number>;
  close(): Promise<void>;
}
