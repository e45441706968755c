import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { type BucketOptions, checkBucketName, KEEP, type KvBucket, type KvStore } from './store.js';

interface Stamped {
  v: unknown;
  /** Time of the last write, ms. */
  t: number;
}

type Line = { b: string; k: string; v?: unknown; t?: number };

// Compaction: when the journal holds more than this many lines and three times more than live keys.
const COMPACT_MIN_LINES = 10_000;
const SWEEP_INTERVAL_MS = 60_000;

/**
 * Buckets of one process, in memory, every change appended to a journal (one JSON line, one write(2)), so a
 * restart keeps the state and a kill -9 loses nothing that was answered. A line torn by a crash is skipped on
 * load. Expired keys are dropped when read, by a sweep each minute and by compaction (a snapshot written to a
 * temporary file, fsynced and renamed over the journal). The state of these buckets is small (logins, counters),
 * so compaction is done in one go.
 */
export class FileKvStore implements KvStore {
  private readonly data = new Map<string, Map<string, Stamped>>();
  private readonly maxAge = new Map<string, number>();
  private fd: number;
  private lines = 0;
  private readonly timer: NodeJS.Timeout;
  /** Lines of the journal that could not be read on load. */
  skippedLines = 0;

  constructor(
    readonly path: string,
    private readonly now: () => number = Date.now,
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.load();
    this.fd = openSync(path, 'a');
    this.timer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  private load(): void {
    if (!existsSync(this.path)) return;
    for (const text of readFileSync(this.path, 'utf8').split('\n')) {
      if (!text) continue;
      this.lines++;
      try {
        this.apply(JSON.parse(text) as Line);
      } catch {
        this.skippedLines++;
      }
    }
  }

  private map(bucket: string): Map<string, Stamped> {
    let m = this.data.get(bucket);
    if (!m) {
      m = new Map();
      this.data.set(bucket, m);
    }
    return m;
  }

  private apply(l: Line): void {
    if (typeof l.b !== 'string' || typeof l.k !== 'string') throw new Error('bad line');
    if (l.v === undefined) this.map(l.b).delete(l.k);
    else this.map(l.b).set(l.k, { v: l.v, t: l.t ?? 0 });
  }

  private write(l: Line): void {
    this.apply(l);
    writeSync(this.fd, `${JSON.stringify(l)}\n`);
    this.lines++;
    let live = 0;
    for (const m of this.data.values()) live += m.size;
    if (this.lines > COMPACT_MIN_LINES && this.lines > live * 3) this.compact();
  }

  private expired(bucket: string, s: Stamped): boolean {
    const age = this.maxAge.get(bucket) ?? 0;
    return age > 0 && this.now() - s.t >= age * 1000;
  }

  /** The live value of a key (an expired one is forgotten). */
  live(bucket: string, key: string): Stamped | undefined {
    const s = this.data.get(bucket)?.get(key);
    if (!s) return undefined;
    if (this.expired(bucket, s)) {
      this.write({ b: bucket, k: key });
      return undefined;
    }
    return s;
  }

  /** Forgets expired keys of every open bucket. */
  sweep(): number {
    let removed = 0;
    for (const [bucket, m] of this.data) {
      if (!this.maxAge.has(bucket)) continue;
      for (const [k, s] of m) {
        if (this.expired(bucket, s)) {
          this.write({ b: bucket, k });
          removed++;
        }
      }
    }
    return removed;
  }

  /** Rewrites the journal as a snapshot of the live keys. */
  compact(): void {
    const tmp = `${this.path}.compact`;
    const fd = openSync(tmp, 'w');
    let lines = 0;
    const out: string[] = [];
    for (const [b, m] of this.data) {
      for (const [k, s] of m) {
        if (this.maxAge.has(b) && this.expired(b, s)) continue;
        out.push(JSON.stringify({ b, k, v: s.v, t: s.t } satisfies Line));
        lines++;
        if (out.length >= 1000) writeSync(fd, `${out.splice(0).join('\n')}\n`);
      }
    }
    if (out.length) writeSync(fd, `${out.join('\n')}\n`);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.path);
    closeSync(this.fd);
    this.fd = openSync(this.path, 'a');
    this.lines = lines;
  }

  async bucket<T>(name: string, opts: BucketOptions): Promise<KvBucket<T>> {
    checkBucketName(name);
    this.maxAge.set(name, opts.maxAgeSeconds);
    const store = this;
    return {
      name,
      async get(key) {
        return store.live(name, key)?.v as T | undefined;
      },
      async update(key, fn) {
        // Read, compute and write with no await in between: atomic within this process.
        const next = fn(store.live(name, key)?.v as T | undefined);
        if (next === KEEP) return store.live(name, key)?.v as T | undefined;
        if (next === undefined) {
          if (store.data.get(name)?.has(key)) store.write({ b: name, k: key });
          return undefined;
        }
        store.write({ b: name, k: key, v: next, t: store.now() });
        return next;
      },
      async delete(key) {
        if (!store.live(name, key)) return false;
        store.write({ b: name, k: key });
        return true;
      },
      async keys(visit) {
        for (const k of [...(store.data.get(name)?.keys() ?? [])]) {
          if (store.live(name, k) && !visit(k)) break;
        }
      },
      async entries(prefix, limit) {
        const out: Array<[string, T]> = [];
        for (const k of [...(store.data.get(name)?.keys() ?? [])]) {
          if (out.length >= limit) break;
          if (!k.startsWith(prefix)) continue;
          const s = store.live(name, k);
          if (s) out.push([k, s.v as T]);
        }
        return out;
      },
    };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}
