import type { Readable } from 'node:stream';

/** Reads the DATA stream; stops keeping bytes past maxBytes (the stream is still drained). */
export async function readMessage(
  stream: Readable,
  maxBytes: number,
): Promise<{ data: Buffer; oversized: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let oversized = false;
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > maxBytes) oversized = true;
    else chunks.push(buf);
  }
  return { data: Buffer.concat(chunks), oversized };
}

export interface ReceivedInfo {
  helo: string;
  clientHostname: string;
  clientIp: string;
  byHost: string;
  protocol: string;
  id: string;
  /** Single recipient only (RFC 5321 7.2: naming one of several would disclose the others). */
  recipients: string[];
  date?: Date;
}

/** A date as trace headers write it (RFC 5322 date-time, UTC). */
export function messageDate(d = new Date()): string {
  return d.toUTCString().replace('GMT', '+0000');
}

/** The Received trace header (RFC 5321 4.4) the edge prepends, CRLF-terminated. */
export function receivedHeader(r: ReceivedInfo): string {
  const from = r.clientHostname && r.clientHostname !== r.clientIp ? `${r.clientHostname} ` : '';
  const forPart = r.recipients.length === 1 ? `\r\n\tfor <${r.recipients[0]}>` : '';
  const date = messageDate(r.date);
  const helo = r.helo.replace(/[\r\n()]/g, '') || 'unknown';
  return `Received: from ${helo} (${from}[${r.clientIp}])\r\n\tby ${r.byHost} (smtpguard) with ${r.protocol} id ${r.id}${forPart};\r\n\t${date}\r\n`;
}
