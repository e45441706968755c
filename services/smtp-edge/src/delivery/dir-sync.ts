import { open } from 'node:fs/promises';

/** fsync of a directory: makes the renames into it durable. */
async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Group commit of a directory's fsync. A caller has renamed its file into the directory and needs a sync that
 * started after its rename: when none is running one starts at once; while one runs, every caller that arrives
 * waits for the next one, which starts when the running one ends and covers them all. So N concurrent messages
 * cost about 2 directory fsyncs instead of N, and none is answered before its own rename is on disk. A failed
 * sync fails every caller waiting for it (each then takes its file back and answers 4xx).
 */
export class DirSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    private readonly syncOnce: (dir: string) => Promise<void> = fsyncDir,
  ) {}

  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.run();
      return this.running;
    }
    if (!this.next) {
      const after = this.running.catch(() => undefined);
      this.next = after.then(() => {
        this.next = undefined;
        this.running = this.run();
        return this.running;
      });
    }
    return this.next;
  }

  private async run(): Promise<void> {
    try {
      await this.syncOnce(this.dir);
    } finally {
      this.running = undefined;
    }
  }
}
