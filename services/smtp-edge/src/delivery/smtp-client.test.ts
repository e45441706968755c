import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type CaptureServer, startCaptureServer } from '@smtpguard/testing';
import { DeliveryError } from './next-hop.js';
import { DotStuffer, parseReply, SmtpClient, type SmtpClientOptions } from './smtp-client.js';

function options(port: number, over: Partial<SmtpClientOptions> = {}): SmtpClientOptions {
  return {
    host: '127.0.0.1',
    port,
    lmtp: false,
    heloName: 'edge.test',
    timeoutMs: 2000,
    opportunisticTls: false,
    ...over,
  };
}

/** A raw TCP next hop that answers lines with a script (or stays silent). */
async function rawServer(
  onSocket: (socket: net.Socket) => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('DotStuffer', () => {
  const stuff = (chunks: string[]) => {
    const s = new DotStuffer();
    const out = Buffer.concat(chunks.map((c) => s.push(Buffer.from(c, 'latin1')))).toString('latin1');
    return out + s.terminator();
  };

  it('stuffs lines starting with a dot, across chunk boundaries', () => {
    assert.equal(stuff(['.a\r\nb\r\n.\r\n..c\r\n']), '..a\r\nb\r\n..\r\n...c\r\n.\r\n');
    assert.equal(stuff(['.', 'a\r', '\n', '.', '\r\n']), '..a\r\n..\r\n.\r\n');
    assert.equal(stuff(['a\r\n', '.b\r\n']), 'a\r\n..b\r\n.\r\n');
  });

  it('stuffs after a bare LF too (no end-of-data smuggling)', () => {
    assert.equal(stuff(['a\n.\r\n']), 'a\n..\r\n.\r\n');
  });

  it('adds CRLF before the final dot only when the message does not end with one', () => {
    assert.equal(stuff(['abc']), 'abc\r\n.\r\n');
    assert.equal(stuff(['abc\r', '\n']), 'abc\r\n.\r\n');
    assert.equal(stuff(['abc\n']), 'abc\n\r\n.\r\n');
    assert.equal(stuff([]), '.\r\n');
    assert.equal(stuff(['']), '.\r\n');
  });
});

describe('parseReply', () => {
  it('takes the enhanced code out of the text and joins the lines', () => {
    assert.deepEqual(parseReply(['550-5.1.1 no such', '550 5.1.1 user here']), {
      code: 550,
      enhanced: '5.1.1',
      text: 'no such user here',
    });
  });

  it('keeps a text without enhanced code, or with one of another class', () => {
    assert.deepEqual(parseReply(['250 OK']), { code: 250, enhanced: '', text: 'OK' });
    assert.deepEqual(parseReply(['250 5.0.0 odd']), { code: 250, enhanced: '', text: '5.0.0 odd' });
    assert.deepEqual(parseReply(['354']), { code: 354, enhanced: '', text: '' });
  });

  it('strips control characters', () => {
    assert.deepEqual(parseReply(['451 4.3.0 bad\u0007\u001b[31m thing\u0085']), {
      code: 451,
      enhanced: '4.3.0',
      text: 'bad  [31m thing',
    });
  });
});

describe('SmtpClient', { timeout: 20_000 }, () => {
  let hop: CaptureServer;
  let tlsHop: CaptureServer;

  before(async () => {
    hop = await startCaptureServer({ size: 1_000_000 });
    tlsHop = await startCaptureServer({ disabledCommands: ['AUTH'] });
  });
  after(async () => {
    await hop.close();
    await tlsHop.close();
  });

  it('reads the extensions the next hop advertises', async () => {
    const client = await SmtpClient.connect(options(hop.port));
    try {
      assert.deepEqual(client.extensions, {
        size: true,
        maxSize: 1_000_000,
        eightBitMime: true,
        smtpUtf8: true,
        pipelining: true,
        startTls: false,
        enhancedStatusCodes: true,
      });
      assert.equal(client.usable, true);
      assert.equal(client.tls, false);
    } finally {
      await client.quit();
    }
    assert.equal(client.usable, false);
  });

  it('sends a message stuffed, written a byte at a time, and counts accepted recipients', async () => {
    const client = await SmtpClient.connect(options(hop.port));
    try {
      assert.equal((await client.mailFrom('a@example.org', { size: 20, body8bit: true })).code, 250);
      assert.equal((await client.command('RCPT TO:<b@example.org>')).code, 250);
      assert.equal(client.acceptedRecipients, 1);
      assert.equal((await client.command('DATA')).code, 354);
      const stream = client.beginData();
      assert.equal(client.usable, false);
      const message = Buffer.from('.x\r\n.\r\nend');
      for (const byte of message) stream.write(Buffer.from([byte]));
      stream.end();
      const replies = await client.endData();
      assert.equal(replies.length, 1);
      assert.equal(replies[0]?.code, 250);
      assert.equal(client.usable, true);
      const last = hop.messages.at(-1);
      assert.equal(last?.raw.toString(), '.x\r\n.\r\nend\r\n');
      assert.deepEqual(last?.mailArgs, { SIZE: '20', BODY: '8BITMIME' });
    } finally {
      await client.quit();
    }
  });

  it('refuses a command with a line break', async () => {
    const client = await SmtpClient.connect(options(hop.port));
    try {
      await assert.rejects(client.command('NOOP\r\nRSET'), DeliveryError);
      assert.equal((await client.command('NOOP')).code, 250);
    } finally {
      client.close();
    }
  });

  it('upgrades with STARTTLS when offered (built-in certificate, not verified)', async () => {
    const client = await SmtpClient.connect(options(tlsHop.port, { opportunisticTls: true }));
    try {
      assert.equal(client.tls, true);
      assert.equal(client.extensions.startTls, false);
      assert.equal((await client.command('NOOP')).code, 250);
    } finally {
      await client.quit();
    }
  });

  it('stays in cleartext when opportunisticTls is off', async () => {
    const client = await SmtpClient.connect(options(tlsHop.port));
    try {
      assert.equal(client.tls, false);
      assert.equal(client.extensions.startTls, true);
    } finally {
      await client.quit();
    }
  });

  it('fails within timeoutMs when the next hop never greets', async () => {
    const silent = await rawServer(() => undefined);
    try {
      const started = Date.now();
      await assert.rejects(SmtpClient.connect(options(silent.port, { timeoutMs: 300 })), (err: unknown) => {
        assert.ok(err instanceof DeliveryError);
        assert.equal(err.reasonCode, 'queue.nexthop_failed');
        assert.match(err.message, /300 ms/);
        return true;
      });
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 250 && elapsed < 1500, `took ${elapsed} ms`);
    } finally {
      await silent.close();
    }
  });

  it('fails on a non-2xx greeting', async () => {
    const refusing = await rawServer((socket) => socket.end('554 5.3.2 not now\r\n'));
    try {
      await assert.rejects(
        SmtpClient.connect(options(refusing.port)),
        /refused greeting: 554 5\.3\.2 not now/,
      );
    } finally {
      await refusing.close();
    }
  });

  it('fails when the connection is refused', async () => {
    const gone = await rawServer(() => undefined);
    const port = gone.port;
    await gone.close();
    await assert.rejects(SmtpClient.connect(options(port)), DeliveryError);
  });

  it('a command without answer times out and leaves the client unusable', async () => {
    const mute = await rawServer((socket) => {
      socket.write('220 mute ESMTP\r\n');
      socket.once('data', () => socket.write('250-mute\r\n250 PIPELINING\r\n'));
    });
    try {
      const client = await SmtpClient.connect(options(mute.port, { timeoutMs: 300 }));
      assert.equal(client.extensions.pipelining, true);
      await assert.rejects(client.command('MAIL FROM:<a@example.org>'), /did not answer within 300 ms/);
      assert.equal(client.usable, false);
      await assert.rejects(client.command('RSET'), DeliveryError);
    } finally {
      await mute.close();
    }
  });

  it('a 421 makes the client unusable', async () => {
    const closing = await rawServer((socket) => {
      socket.write('220 closing ESMTP\r\n');
      let n = 0;
      socket.on('data', () => {
        n++;
        if (n === 1) socket.write('250 closing\r\n');
        else socket.write('421 4.3.2 shutting down\r\n');
      });
    });
    try {
      const client = await SmtpClient.connect(options(closing.port));
      const reply = await client.command('MAIL FROM:<a@example.org>');
      assert.deepEqual(reply, { code: 421, enhanced: '4.3.2', text: 'shutting down' });
      assert.equal(client.usable, false);
      client.close();
    } finally {
      await closing.close();
    }
  });
});
