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
import type { TripletRecord, TripletStore } from './store.js';

/**
 * Embedded store: all triplets in memory, every change appended to a journal file as one JSON line with a
 * single write(2), so a kill -9 loses nothing the process had answered (a torn last line from a crash
 * during write is skipped on load). When the journal holds far more lines than live entries it is
 * compacted: a snapshot is written to a temporary file, fsynced and renamed over the journal (atomic).
 */
export class FileTripletStore implements TripletStore {
  private map = new Map<string, TripletRecord>();
  private fd: number;
  private journalLines = 0;
  skippedLines = 0;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.load();
    this.fd = openSync(path, 'a');
  }

  private load(): void {
    if (!existsSync(this.path)) return;
    const text = readFileSync(this.path, 'utf8');
    for (const line of text.split('\n')) {
      if (!line) continue;
      this.journalLines++;
      try {
        const entry = JSON.parse(line) as { k: string; v?: TripletRecord };
        if (entry.v) this.map.set(entry.k, entry.v);
        else this.map.delete(entry.k);
      } catch {
        this.skippedLines++;
      }
    }
  }

  private append(entry: { k: string; v?: TripletRecord }): void {
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    this.journalLines++;
    if (this.journalLines > 1000 && this.journalLines > this.map.size * 3) this.compact();
  }

  compact(): void {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w');
    const chunk: string[] = [];
    for (const [k, v] of this.map) {
      chunk.push(JSON.stringify({ k, v }));
      if (chunk.length === 4096) {
        writeSync(fd, `${chunk.join('\n')}\n`);
        chunk.length = 0;
      }
    }
    if (chunk.length) writeSync(fd, `${chunk.join('\n')}\n`);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.path);
    closeSync(this.fd);
    this.fd = openSync(this.path, 'a');
    this.journalLines = this.map.size;
  }

  async get(key: string): Promise<TripletRecord | undefined> {
    return this.map.get(key);
  }

  async put(key: string, record: TripletRecord): Promise<void> {
    this.map.set(key, record);
    this.append({ k: key, v: record });
  }

  async delete(key: string): Promise<boolean> {
    const had = this.map.delete(key);
    if (had) this.append({ k: key });
    return had;
  }

  async list(query: string, limit: number): Promise<Array<[string, TripletRecord]>> {
    const out: Array<[string, TripletRecord]> = [];
    for (const entry of this.map) {
      if (!query || entry[0].includes(query)) out.push(entry);
      if (out.length >= limit) break;
    }
    return out;
  }

  async count(): Promise<number> {
    return this.map.size;
  }

  async close(): Promise<void> {
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}
