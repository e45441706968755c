/**
 * A bounded map whose entries expire: what the edge keeps of the services' answers (docs/configuration.md,
 * edge.cache). An entry is served for at most `ttlMs` after the answer arrived; the oldest entries go first when
 * `maxEntries` is reached; clear() drops everything (the edge does on every config reload). Only answers are
 * kept: a failed lookup is not, so the next session asks again. Concurrent lookups of one key share one call.
 */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  private readonly pending = new Map<string, Promise<V>>();
  private generation = 0;

  constructor(
    readonly ttlMs: number,
    readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.ttlMs > 0 && this.maxEntries > 0;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The fresh value of key, or undefined (an expired entry is removed). */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V): void {
    if (!this.enabled) return;
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    this.entries.set(key, { value, expires: this.now() + this.ttlMs });
  }

  /**
   * The cached value of key when fresh; otherwise load()'s answer, kept for ttlMs when `keep` says so (a
   * rejection is never kept).
   */
  async through(key: string, load: () => Promise<V>, keep: (value: V) => boolean = () => true): Promise<V> {
    if (!this.enabled) return load();
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const inFlight = this.pending.get(key);
    if (inFlight) return inFlight;
    const generation = this.generation;
    const p = load().then(
      (value) => {
        // An answer that was asked for before clear() belongs to the previous config: not kept.
        if (generation === this.generation && keep(value)) this.set(key, value);
        return value;
      },
      (err: unknown) => {
        throw err;
      },
    );
    this.pending.set(key, p);
    try {
      return await p;
    } finally {
      if (this.pending.get(key) === p) this.pending.delete(key);
    }
  }

  clear(): void {
    this.entries.clear();
    this.pending.clear();
    this.generation += 1;
  }
}
