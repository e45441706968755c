import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from '@smtpguard/testing';

/** A decision as the embedded mode writes it (proto3 JSON, one a line). */
export interface FileDecision {
  id?: string;
  subject: string;
  service: string;
  phase: string;
  check: string;
  outcome: string;
  reasonCode: string;
  detail?: string;
  reply?: { code: number; enhancedCode: string; text: string };
  session?: {
    sessionId?: string;
    clientIp?: string;
    helo?: string;
    sender?: string;
    authenticatedUser?: string;
  };
  recipient?: string;
  messageId?: string;
  traceId?: string;
  attributes?: Record<string, string>;
}

/** Every decision written so far to <dir>/state/decisions.jsonl. */
export async function readDecisions(dir: string): Promise<FileDecision[]> {
  let text = '';
  try {
    text = await readFile(join(dir, 'state', 'decisions.jsonl'), 'utf8');
  } catch {
    return [];
  }
  // The file is appended to while tests read it: only complete lines (a line still being written is left).
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as FileDecision);
}

/** Waits for a decision matching pred (the file is written asynchronously). */
export function findDecision(
  dir: string,
  pred: (d: FileDecision) => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<FileDecision> {
  return waitFor(`decision ${what}`, async () => (await readDecisions(dir)).find(pred), timeoutMs);
}
