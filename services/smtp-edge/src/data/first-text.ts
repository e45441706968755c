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
  const email = await PostalMime.parse(raw);
  const html = !email.text && Boolean(email.html);
  const full = (email.text || email.html || '').replace(/\r\n?/g, '\n');
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
