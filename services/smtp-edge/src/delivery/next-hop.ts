import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Config, LoadedConfig } from '@smtpguard/config';
import nodemailer from 'nodemailer';

export interface Envelope {
  from: string;
  to: string[];
}

/** Why a hand-off failed: transient (ask the client to retry) or a permanent refusal by the next hop. */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
    readonly reasonCode: 'queue.nexthop_failed' | 'queue.nexthop_rejected' | 'queue.spool_failed',
  ) {
    super(message);
  }
}

export interface NextHop {
  /** Human-readable target, for decisions and logs. */
  describe(): string;
  /** Resolves once the next hop has the message; only then may the client get 250. */
  deliver(id: string, envelope: Envelope, message: Buffer): Promise<void>;
  close(): void;
}

/**
 * Embedded next hop: one file per message in <dir>/new, maildir-style — written to <dir>/tmp, fsynced,
 * renamed into new/ and the directory fsynced, so a file in new/ is always complete and durable.
 * The envelope is kept in Return-Path and X-Smtpguard-Envelope-To headers at the top of the file.
 */
export class SpoolNextHop implements NextHop {
  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    mkdirSync(join(dir, 'new'), { recursive: true });
  }

  describe(): string {
    return `spool ${this.dir}`;
  }

  async deliver(id: string, envelope: Envelope, message: Buffer): Promise<void> {
    const name = `${Date.now()}.${id}.eml`;
    const tmp = join(this.dir, 'tmp', name);
    try {
      const head =
        `Return-Path: <${envelope.from}>\r\n` +
        envelope.to.map((r) => `X-Smtpguard-Envelope-To: <${r}>\r\n`).join('');
      const fd = openSync(tmp, 'wx');
      try {
        writeSync(fd, head);
        writeSync(fd, message);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, join(this.dir, 'new', name));
      const dirFd = openSync(join(this.dir, 'new'), 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    } catch (err) {
      throw new DeliveryError((err as Error).message, false, 'queue.spool_failed');
    }
  }

  close(): void {}
}

type SmtpHopConfig = Extract<Config['edge']['nextHop'], { type: 'smtp' | 'lmtp' }>;

/** SMTP or LMTP next hop through nodemailer's SMTP client; the message is sent as received (raw). */
export class SmtpNextHop implements NextHop {
  private transport: ReturnType<typeof nodemailer.createTransport>;

  constructor(
    readonly cfg: SmtpHopConfig,
    heloName: string,
  ) {
    this.transport = nodemailer.createTransport({
      host: cfg.host,
      port: cfg.port,
      lmtp: cfg.type === 'lmtp',
      secure: false,
      ignoreTLS: !cfg.opportunisticTls,
      name: heloName,
      connectionTimeout: Math.min(cfg.timeoutMs, 10_000),
      greetingTimeout: Math.min(cfg.timeoutMs, 10_000),
      socketTimeout: cfg.timeoutMs,
      // The next hop is usually an internal server with a private certificate.
      tls: { rejectUnauthorized: false },
    });
  }

  describe(): string {
    return `${this.cfg.type}://${this.cfg.host}:${this.cfg.port}`;
  }

  async deliver(_id: string, envelope: Envelope, message: Buffer): Promise<void> {
    try {
      const info = await this.transport.sendMail({
        envelope: { from: envelope.from, to: envelope.to },
        raw: message,
      });
      if (info.rejected.length) {
        throw Object.assign(new Error(`next hop rejected ${info.rejected.join(', ')}: ${info.response}`), {
          responseCode: 550,
        });
      }
    } catch (err) {
      const code = (err as { responseCode?: number }).responseCode;
      const permanent = typeof code === 'number' && code >= 500;
      throw new DeliveryError(
        (err as Error).message.replace(/[\r\n]+/g, ' '),
        permanent,
        permanent ? 'queue.nexthop_rejected' : 'queue.nexthop_failed',
      );
    }
  }

  close(): void {
    this.transport.close();
  }
}

export function createNextHop(loaded: LoadedConfig): NextHop {
  const hop = loaded.config.edge.nextHop;
  if (hop.type === 'spool') return new SpoolNextHop(loaded.statePath(hop.dir));
  return new SmtpNextHop(hop, loaded.config.edge.hostname);
}

export function newMessageId(): string {
  return randomUUID().replace(/-/g, '').slice(0, 20).toUpperCase();
}
