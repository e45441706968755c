// The edge extends smtp-server (pinned at exactly 3.21.6 in package.json) by subclassing: EdgeConnection
// overrides init, send, _onCommand and a few handlers, and translates smtp-server's own replies through
// native-replies.ts. These tests fail when an upgrade changes what that relies on, so it is reviewed
// instead of silently falling back to smtp-server's wording or behaviour.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { nativeRule } from './native-replies.js';

const require = createRequire(import.meta.url);
const root = join(dirname(require.resolve('smtp-server')), '..', '..');
const source = (file: string) => readFileSync(join(root, 'dist', 'esm', file), 'utf8');

// Reviewed against the overrides in connection.ts and edge.ts and the rules in native-replies.ts.
const REVIEWED = {
  version: '3.21.6',
  'smtp-connection.js': 'b7ee51b8774cabf09ce667a89743efd027eca234d23bee5e5296c2c00de0fd3a',
  'sasl.js': 'a8173714ad5ddd9ba44d409b8ec95e3cddb505aa77ffaed4b975562ff68c8947',
  'smtp-server.js': '7d526449a98692430a28bf927c49cfa1e7ea0d35e06d8c7442deb9c36dc6e2f8',
  'smtp-stream.js': '4e48daabf1b43c951e6f561940a9d141ed3f2d953f8783889586c67122c2aa18',
};

describe('smtp-server as the edge relies on it', () => {
  it('is the reviewed version, byte for byte', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    assert.equal(pkg.version, REVIEWED.version);
    for (const file of ['smtp-connection.js', 'sasl.js', 'smtp-server.js', 'smtp-stream.js'] as const) {
      const hash = createHash('sha256').update(source(file)).digest('hex');
      assert.equal(
        hash,
        REVIEWED[file],
        `smtp-server's ${file} changed: review EdgeConnection's overrides and native-replies.ts, then update REVIEWED`,
      );
    }
  });

  it('has the methods EdgeConnection overrides and calls', () => {
    const proto = SMTPConnection.prototype as unknown as Record<string, unknown>;
    for (const m of [
      'init',
      'connectionReady',
      'send',
      'close',
      '_onCommand',
      '_setListeners',
      '_whenWritable',
      '_resetSession',
      'handler_EHLO',
      'handler_HELO',
      'handler_RSET',
      'handler_VRFY',
      'handler_HELP',
      'upgrade',
    ]) {
      assert.equal(typeof proto[m], 'function', `SMTPConnection.prototype.${m}`);
    }
    assert.equal(typeof (SMTPServer.prototype as unknown as Record<string, unknown>).connect, 'function');
  });

  it('still has the fixed 100 ms greeting pause that EdgeConnection.init replaces', () => {
    assert.match(source('smtp-connection.js'), /setTimeout\(\(\) => this\.connectionReady\(\), 100\)/);
  });

  it('every reply smtp-server can send is translated into a catalog reason', () => {
    const literal = /send\((\d{3}),\s*'((?:[^'\\]|\\.)*)'\s*[,)]/g;
    const sent: Array<[number, string]> = [];
    for (const file of ['smtp-connection.js', 'sasl.js', 'smtp-server.js']) {
      for (const m of source(file).matchAll(literal)) sent.push([Number(m[1]), m[2] as string]);
    }
    // Replies built from parts, as smtp-server sends them (hostname "mx.test", limit 300000).
    sent.push(
      [421, 'Error: Command line too long'],
      [421, 'mx.test You talk too soon'],
      [421, 'mx.test Too many connected clients, try again in a moment'],
      [220, 'mx.test ESMTP'],
      [501, 'Error: syntax: EHLO hostname'],
      [503, 'Error: send HELO/EHLO first'],
      [500, 'Error: HELO not allowed in LMTP server'],
      [501, 'Error: duplicate SIZE parameter'],
      [501, 'Error: BODY parameter requires a value'],
      [552, 'Error: message exceeds fixed maximum message size 300000'],
    );
    // Handled before the table: the base64 challenges of AUTH (334), MAIL/RCPT "Accepted" (mail.accepted,
    // rcpt.accepted) and the EHLO/HELO reply (helo.ok).
    const before = (code: number, text: string) => code === 334 || (code === 250 && text === 'Accepted');
    const missing = sent.filter(([code, text]) => !before(code, text) && !nativeRule(code, text));
    assert.ok(sent.length > 60, `found ${sent.length} replies`);
    assert.deepEqual(missing, []);
  });
});
