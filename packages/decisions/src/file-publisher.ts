import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { events } from '@smtpguard/contracts';
import { decisionSubject } from './decision.js';
import type { DecisionPublisher } from './publisher.js';

/**
 * Embedded mode: one JSON object a line (the Decision's proto3 JSON form plus its subject). The lines of one turn
 * of the event loop go out in one write (a message's checks record several decisions at once).
 */
export class FileDecisionPublisher implements DecisionPublisher {
  private out: WriteStream;
  private pending: string[] = [];
  private scheduled = false;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.out = createWriteStream(path, { flags: 'a' });
  }

  publish(d: events.Decision): void {
    const line = JSON.stringify({ subject: decisionSubject(d), ...(events.Decision.toJSON(d) as object) });
    this.pending.push(line);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (!this.pending.length) return;
    this.out.write(`${this.pending.join('\n')}\n`);
    this.pending = [];
  }

  async close(): Promise<void> {
    this.flush();
    await new Promise<void>((resolve) => this.out.end(resolve));
  }
}
