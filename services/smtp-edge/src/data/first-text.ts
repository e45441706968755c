import PostalMime from 'postal-mime';
import type { MessageBody } from '../engine/check.js';

export interface FirstText {
  /** Decoded text (quoted-printable and base64 undone, charset converted), cut to the limits. */
  text: string;
  /** The part is text/html (there was no text/plain one first). */
  html: boolean;
  /** Lines of the part that were left out (beyond maxLines). */
  truncated: boolean;
}

/**
 * The decoded text of the message's first text part (text/plain, else text/html), for the URI lists: only the
 * first `maxMessageBytes` of the message are read (a truncated tail parses fine with postal-mime), and of the
 * decoded text the first `maxLines` lines, at most `maxTextBytes` octets.
 */
export async function firstText(
  message: MessageBody,
  limits: { maxMessageBytes: number; maxLines: number; maxTextBytes: number },
): Promise<FirstText> {
  const chunks: Buffer[] = [];
  let size = 0;
  const stream = message.reader();
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      chunks.push(b);
      size += b.length;
      if (size >= limits.maxMessageBytes) break;
    }
  } finally {
    stream.destroy();
  }
  const raw = Buffer.concat(chunks).subarray(0, limits.maxMessageBytes);
  const plain = plainText(raw);
  let html: boolean;
  let full: string;
  if (plain) {
    ({ html, text: full } = plain);
  } else {
    const email = await PostalMime.parse(raw);
    html = !email.text && Boolean(email.html);
    full = (email.text || email.html || '').replace(/\r\n?/g, '\n');
  }
  const lines = full.split('\n');
  let text = lines.slice(0, limits.maxLines).join('\n');
  if (Buffer.byteLength(text) > limits.maxTextBytes) {
    text = Buffer.from(text)
      .subarray(0, limits.maxTextBytes)
      .toString('utf8')
      .replace(/\uFFFD$/, '');
  }
  return { text, html, truncated: lines.length > limits.maxLines };
}

/** Byte that is not 7-bit ASCII; a CR not followed by LF; an LF not after a CR. */
const HIGH_BIT = /[\x80-\xff]/;
const BARE_LINE_END = /\r(?!\n)|(?<!\r)\n/;
const SIMPLE_TYPE = /^(text\/(plain|html))\s*(?:;\s*charset\s*=\s*"?([\w.:-]+)"?\s*;?\s*)?$/i;
const IDENTITY_ENCODING = /^\s*(7bit|8bit|binary)\s*$/i;

/**
 * The text of a message that is one text part needing no decoding, as postal-mime would give it (each line
 * ended by LF), without parsing it with postal-mime: at most one Content-Type, `text/plain` or `text/html` with no
 * parameter but the charset (none, or absent; no format=flowed, no RFC 2231), at most one
 * Content-Transfer-Encoding, 7bit/8bit/binary; CRLF line ends only; bytes beyond ASCII only with charset utf-8.
 * Anything else is undefined, and postal-mime decodes it. Most mail to a mail host's MX is multipart, for which
 * this saves nothing; plain single-part mail (notifications, scripts, the benchmark) skips the parser.
 */
export function plainText(raw: Buffer): { text: string; html: boolean } | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = raw.toString('latin1', 0, end);
  let type: string | undefined;
  let encoding: string | undefined;
  for (const line of head.replace(/\r\n[ \t]/g, ' ').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (name === 'content-type') {
      if (type !== undefined) return undefined;
      type = line.slice(colon + 1).trim();
    } else if (name === 'content-transfer-encoding') {
      if (encoding !== undefined) return undefined;
      encoding = line.slice(colon + 1);
    }
  }
  if (encoding !== undefined && !IDENTITY_ENCODING.test(encoding)) return undefined;
  let html = false;
  let utf8 = false;
  if (type !== undefined) {
    const m = SIMPLE_TYPE.exec(type);
    if (!m) return undefined;
    html = (m[1] as string).toLowerCase() === 'text/html';
    const charset = m[3]?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8' && charset !== 'us-ascii') {
      return undefined;
    }
    utf8 = charset === 'utf-8' || charset === 'utf8';
  }
  const bodyBytes = raw.subarray(end + 4);
  const latin = bodyBytes.toString('latin1');
  if (BARE_LINE_END.test(latin) || (!utf8 && HIGH_BIT.test(latin))) return undefined;
  if (!bodyBytes.length) return { text: '', html: false };
  const body = utf8 ? bodyBytes.toString('utf8') : latin;
  const text = body.endsWith('\r\n') ? body.replaceAll('\r\n', '\n') : `${body.replaceAll('\r\n', '\n')}\n`;
  return { text, html };
}
