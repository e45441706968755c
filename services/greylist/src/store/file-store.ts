import {
  closeSync,
  existsSync,
  fsync,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { ClientRecord, GreylistStore, TripletRecord, WhitelistKind, WhitelistRecord } from './store.js';

type Entry =
  | { t: 'triplet'; k: string; v?: TripletRecord }
  | { t: 'client'; k: string; v?: ClientRecord }
  | { t: 'whitelist'; k: string; v?: WhitelistRecord };

// Entries serialized per slice of a compaction; between slices checks run (about 3 ms of work each).
const COMPACTION_SLICE = 500;

const wlKey = (kind: WhitelistKind, value: string) => `${kind}:${value.toLowerCase()}`;

/**
 * Embedded store for one greylist process. Everything lives in memory; every change is appended to a
 * journal as one JSON line with a single write(2), so a kill -9 loses nothing that was answered (the OS
 * has the bytes) and a line torn by a crash mid-write is skipped on load.
 *
 * The journal is compacted when it holds several times more lines than live entries. Compaction never
 * stalls checks: the snapshot is written in slices between which checks run; changes made meanwhile are
 * appended to the old journal as usual and replayed after the snapshot into the new file, which is then
 * fsynced and renamed over the journal (atomic). Expired entries are dropped by compaction and by a
 * sweep that visits a bounded slice per tick.
 */
export class FileGreylistStore implements GreylistStore {
  private triplets = new Map<string, TripletRecord>();
  private clients = new Map<string, ClientRecord>();
  private whitelist = new Map<string, WhitelistRecord>();
  private fd: number;
  private journalLines = 0;
  private compacting: { since: Entry[] } | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Lines that could not be read on load (a torn last line after a crash). */
  skippedLines = 0;

  constructor(
    readonly path: string,
    private readonly opts: { expirySeconds?: number; now?: () => number; sweepIntervalMs?: number } = {},
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.load();
    this.fd = openSync(path, 'a');
    if (opts.expirySeconds && opts.sweepIntervalMs !== 0) {
      this.sweepTimer = setInterval(() => this.sweep(), opts.sweepIntervalMs ?? 60_000);
      this.sweepTimer.unref();
    }
  }

  private now(): number {
    return this.opts.now?.() ?? Math.floor(Date.now() / 1000);
  }

  /** Replays the journal in 16 MiB chunks (a journal of millions of lines is larger than one string may be). */
  private load(): void {
    if (!existsSync(this.path)) return;
    const fd = openSync(this.path, 'r');
    const chunk = Buffer.alloc(16 * 1024 * 1024);
    let rest = '';
    const line = (text: string) => {
      if (!text) return;
      this.journalLines++;
      try {
        this.apply(JSON.parse(text) as Entry);
      } catch {
        this.skippedLines++;
      }
    };
    try {
      for (;;) {
        const n = readSync(fd, chunk, 0, chunk.length, null);
        if (n === 0) break;
        const lines = (rest + chunk.toString('utf8', 0, n)).split('\n');
        rest = lines.pop() ?? '';
        for (const l of lines) line(l);
      }
      line(rest);
    } finally {
      closeSync(fd);
    }
  }

  private apply(e: Entry): void {
    const map = (e.t === 'triplet' ? this.triplets : e.t === 'client' ? this.clients : this.whitelist) as Map<
      string,
      unknown
    >;
    if (e.v) map.set(e.k, e.v);
    else map.delete(e.k);
  }

  private record(e: Entry): void {
    this.apply(e);
    writeSync(this.fd, `${JSON.stringify(e)}\n`);
    this.journalLines++;
    this.compacting?.since.push(e);
    const live = this.triplets.size + this.clients.size + this.whitelist.size;
    if (!this.compacting && this.journalLines > 10_000 && this.journalLines > live * 3) void this.compact();
  }

  /** Rewrites the journal as a snapshot, in slices; see the class comment. */
  async compact(): Promise<void> {
    if (this.compacting) return;
    const state = { since: [] as Entry[] };
    this.compacting = state;
    const tmp = `${this.path}.compact`;
    const fd = openSync(tmp, 'w');
    try {
      let lines = 0;
      const expiry = this.opts.expirySeconds;
      const cutoff = expiry ? this.now() - expiry : Number.NEGATIVE_INFINITY;
      const slices: Array<[Entry['t'], Map<string, TripletRecord | ClientRecord | WhitelistRecord>]> = [
        ['whitelist', this.whitelist],
        ['client', this.clients],
        ['triplet', this.triplets],
      ];
      for (const [t, map] of slices) {
        const keys = [...map.keys()];
        for (let i = 0; i < keys.length; i += COMPACTION_SLICE) {
          const out: string[] = [];
          for (const k of keys.slice(i, i + COMPACTION_SLICE)) {
            const v = map.get(k);
            if (!v) continue;
            if (t !== 'whitelist' && (v as TripletRecord).lastSeen < cutoff) continue;
            out.push(JSON.stringify({ t, k, v }));
          }
          if (out.length) writeSync(fd, `${out.join('\n')}\n`);
          lines += out.length;
          await new Promise((r) => setImmediate(r));
        }
      }
      // Changes made while the snapshot was written, in order (last write wins on replay).
      const since = state.since.map((e) => JSON.stringify(e));
      if (since.length) writeSync(fd, `${since.join('\n')}\n`);
      await new Promise<void>((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
      // Changes that arrived during the fsync: the rename below must not drop them.
      const late = state.since.slice(since.length).map((e) => JSON.stringify(e));
      if (late.length) writeSync(fd, `${late.join('\n')}\n`);
      closeSync(fd);
      renameSync(tmp, this.path);
      closeSync(this.fd);
      this.fd = openSync(this.path, 'a');
      this.journalLines = lines + state.since.length;
    } finally {
      this.compacting = undefined;
    }
  }

  /** Forgets triplets and clients not seen for expirySeconds, a bounded slice per call. */
  sweep(maxVisits = 20_000): number {
    const expiry = this.opts.expirySeconds;
    if (!expiry) return 0;
    const cutoff = this.now() - expiry;
    let removed = 0;
    let visits = 0;
    for (const [t, map] of [
      ['triplet', this.triplets],
      ['client', this.clients],
    ] as const) {
      for (const [k, v] of map) {
        if (++visits > maxVisits) return removed;
        if (v.lastSeen < cutoff) {
          this.record({ t, k } as Entry);
          removed++;
        }
      }
    }
    return removed;
  }

  async getTriplet(key: string): Promise<TripletRecord | undefined> {
    return this.triplets.get(key);
  }

  async updateTriplet(
    key: string,
    fn: (c: TripletRecord | undefined) => TripletRecord,
  ): Promise<TripletRecord> {
    // Read, compute and write with no await in between: atomic within this process.
    const v = fn(this.triplets.get(key));
    this.record({ t: 'triplet', k: key, v });
    return v;
  }

  async deleteTriplet(key: string): Promise<boolean> {
    if (!this.triplets.has(key)) return false;
    this.record({ t: 'triplet', k: key });
    return true;
  }

  async listTriplets(query: string, limit: number): Promise<Array<[string, TripletRecord]>> {
    const out: Array<[string, TripletRecord]> = [];
    for (const entry of this.triplets) {
      if (out.length >= limit) break;
      if (!query || entry[0].includes(query)) out.push(entry);
    }
    return out;
  }

  async countTriplets(): Promise<number> {
    return this.triplets.size;
  }

  async getClient(client: string): Promise<ClientRecord | undefined> {
    return this.clients.get(client);
  }

  async updateClient(
    client: string,
    fn: (c: ClientRecord | undefined) => ClientRecord,
  ): Promise<ClientRecord> {
    const v = fn(this.clients.get(client));
    this.record({ t: 'client', k: client, v });
    return v;
  }

  async countClients(deliveries: number): Promise<number> {
    let n = 0;
    for (const c of this.clients.values()) if (c.deliveries >= deliveries) n++;
    return n;
  }

  async listWhitelist(): Promise<WhitelistRecord[]> {
    return [...this.whitelist.values()];
  }

  async addWhitelist(entry: WhitelistRecord): Promise<void> {
    this.record({ t: 'whitelist', k: wlKey(entry.kind, entry.value), v: entry });
  }

  async removeWhitelist(kind: WhitelistKind, value: string): Promise<boolean> {
    const k = wlKey(kind, value);
    if (!this.whitelist.has(k)) return false;
    this.record({ t: 'whitelist', k });
    return true;
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    while (this.compacting) await new Promise((r) => setTimeout(r, 10));
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}
