// The fast path for single-part text messages against postal-mime itself: for every message it takes, the same
// text and html flag; every other message is left to postal-mime.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import PostalMime from 'postal-mime';
import { firstText, plainText } from './first-text.js';

async function byPostalMime(raw: Buffer): Promise<{ text: string; html: boolean }> {
  const email = await PostalMime.parse(raw);
  return {
    text: (email.text || email.html || '').replace(/\r\n?/g, '\n'),
    html: !email.text && Boolean(email.html),
  };
}

const TYPES = [
  undefined,
  'text/plain',
  'text/plain; charset=utf-8',
  'text/plain; charset="UTF-8"',
  'text/plain;\r\n charset=utf-8',
  'TEXT/HTML; charset=us-ascii',
  'text/html',
  'text/plain; charset=iso-8859-1',
  'text/plain; charset=utf-8; format=flowed',
  "text/plain; charset*=utf-8''x",
  'multipart/alternative; boundary="b1"',
  'application/octet-stream',
];
const ENCODINGS = [undefined, '7bit', '8BIT', 'binary', 'quoted-printable', 'base64'];
const BODIES: Array<string | Buffer> = [
  '',
  'hello\r\n',
  'a\r\nb',
  '\r\n\r\nx\r\n\r\n',
  'Visit http://uri.example/a?b=c now\r\nline2\r\n',
  'Ümlauts ✓ stay\r\n',
  Buffer.from([0x61, 0xff, 0xfe, 0x0d, 0x0a]),
  'bare\nline feed\r\n',
  'bare\rreturn\r\n',
  '=C3=9C and aGVsbG8=\r\n',
  '--b1\r\nContent-Type: text/plain\r\n\r\ninner\r\n--b1--\r\n',
];

function message(type: string | undefined, encoding: string | undefined, body: string | Buffer): Buffer {
  const head = ['From: <a@remote.example>', 'Subject: t'];
  if (type !== undefined) head.push(`Content-Type: ${type}`);
  if (encoding !== undefined) head.push(`Content-Transfer-Encoding: ${encoding}`);
  return Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), Buffer.from(body)]);
}

describe('plainText (single-part text without postal-mime)', () => {
  it('gives what postal-mime gives, for every message it takes', async () => {
    let taken = 0;
    let left = 0;
    for (const type of TYPES) {
      for (const encoding of ENCODINGS) {
        for (const body of BODIES) {
          const raw = message(type, encoding, body);
          const fast = plainText(raw);
          if (!fast) {
            left++;
            continue;
          }
          taken++;
          assert.deepEqual(fast, await byPostalMime(raw), JSON.stringify(raw.toString('latin1')));
        }
      }
    }
    assert.ok(taken >= 100 && left >= 300, `taken ${taken}, left ${left}`);
  });

  it('takes plain single-part text, leaves what needs decoding or is not one text part', () => {
    const takes = (type?: string, encoding?: string, body: string | Buffer = 'x\r\n') =>
      plainText(message(type, encoding, body)) !== undefined;
    assert.equal(takes(), true);
    assert.equal(takes('text/plain; charset=utf-8', '7bit', 'Ümlaut\r\n'), true);
    assert.equal(takes('text/html'), true);
    assert.equal(
      takes(undefined, undefined, 'Ümlaut\r\n'),
      false,
      'no charset: 8-bit bytes left to postal-mime',
    );
    assert.equal(takes('text/plain; charset=iso-8859-1'), false);
    assert.equal(takes('text/plain; charset=utf-8; format=flowed'), false);
    assert.equal(takes('multipart/alternative; boundary="b1"'), false);
    assert.equal(takes(undefined, 'quoted-printable'), false);
    assert.equal(takes(undefined, 'base64'), false);
    assert.equal(takes(undefined, undefined, 'bare\nlf\r\n'), false);
    assert.equal(plainText(Buffer.from('Subject: no body separator\r\n')), undefined);
    assert.equal(plainText(Buffer.from('Subject: a\r\nnot a header\r\n\r\nx\r\n')), undefined);
    assert.equal(
      plainText(Buffer.from('Content-Type: text/plain\r\nContent-Type: text/html\r\n\r\nx\r\n')),
      undefined,
      'two Content-Type headers',
    );
  });

  it('firstText cuts either way to the same limits', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i} http://u${i}.example/`).join('\r\n');
    const limits = { maxMessageBytes: 600, maxLines: 5, maxTextBytes: 100 };
    const plain = message('text/plain; charset=utf-8', undefined, `${lines}\r\n`);
    const qp = message('text/plain; charset=utf-8', 'quoted-printable', `${lines}\r\n`);
    const body = (raw: Buffer) => ({ reader: () => Readable.from([raw]) }) as never;
    const a = await firstText(body(plain), limits);
    const b = await firstText(body(qp), limits);
    assert.deepEqual(a, b);
    assert.equal(a.truncated, true);
    assert.ok(Buffer.byteLength(a.text) <= 100);
    assert.match(a.text, /^line 0 http:\/\/u0\.example\/\nline 1 /);
  });
});
