import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { events } from '@smtpguard/contracts';
import { decisionSubject } from './decision.js';
import type { DecisionPublisher } from './publisher.js';

/** Embedded mode: one JSON object a line (the Decision's proto3 JSON form plus its subject). */
export class FileDecisionPublisher implements DecisionPublisher {
  private out: WriteStream;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.out = createWriteStream(path, { flags: 'a' });
  }

  publish(d: events.Decision): void {
    const line = JSON.stringify({ subject: decisionSubject(d), ...(events.Decision.toJSON(d) as object) });
    this.out.write(`${line}\n`);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.out.end(resolve));
  }
}
