/** One triplet as stored. Times are Unix seconds. */
export interface TripletRecord {
  firstSeen: number;
  lastSeen: number;
  /** When the triplet first passed; 0 while greylisted. */
  passedAt: number;
  passCount: number;
}

/** Auto-whitelist state of one client (network, or spf:<domain>). */
export interface ClientRecord {
  /** Successful deliveries counted (at most one per autoWhitelist.intervalSeconds). */
  deliveries: number;
  lastCountedAt: number;
  lastSeen: number;
}

export type WhitelistKind = 'client' | 'recipient';

export interface WhitelistRecord {
  kind: WhitelistKind;
  value: string;
  comment: string;
  /** Unix seconds. */
  createdAt: number;
}

/**
 * Storage of the greylist: triplets, auto-whitelist clients and the administrator's whitelist.
 * update* apply fn atomically: read, compute, write with compare-and-set, and on conflict read again and
 * re-run fn (so fn must be pure). Two replicas updating the same key never lose an update.
 */
export interface GreylistStore {
  getTriplet(key: string): Promise<TripletRecord | undefined>;
  updateTriplet(
    key: string,
    fn: (current: TripletRecord | undefined) => TripletRecord,
  ): Promise<TripletRecord>;
  deleteTriplet(key: string): Promise<boolean>;
  /** Triplets whose key contains query (all when empty), at most limit. */
  listTriplets(query: string, limit: number): Promise<Array<[string, TripletRecord]>>;
  countTriplets(): Promise<number>;

  getClient(client: string): Promise<ClientRecord | undefined>;
  updateClient(
    client: string,
    fn: (current: ClientRecord | undefined) => ClientRecord,
  ): Promise<ClientRecord>;
  /** Clients with at least `deliveries` counted deliveries. */
  countClients(deliveries: number): Promise<number>;

  listWhitelist(): Promise<WhitelistRecord[]>;
  addWhitelist(entry: WhitelistRecord): Promise<void>;
  removeWhitelist(kind: WhitelistKind, value: string): Promise<boolean>;

  close(): Promise<void>;
}
