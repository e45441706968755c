import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { type CaptureServer, smtpError, startCaptureServer } from '@smtpguard/testing';
import { DeliveryError, type HopEnvelope, type HopReply, newMessageId } from './next-hop.js';
import { type SmtpHopConfig, SmtpNextHop } from './smtp-hop.js';

function config(port: number, over: Partial<SmtpHopConfig> = {}): SmtpHopConfig {
  return {
    type: 'smtp',
    host: '127.0.0.1',
    port,
    timeoutMs: 2000,
    opportunisticTls: false,
    pool: { maxConnections: 4, idleTimeoutMs: 10_000 },
    failover: [],
    ...over,
  };
}

function envelope(over: Partial<HopEnvelope> = {}): HopEnvelope {
  return { id: newMessageId(), from: 'sender@example.org', ...over };
}

/** Polls until cond() holds (bounded). */
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await delay(10);
  }
}

/** One complete transaction: all recipients, then the message (when one was accepted). */
async function deliver(
  hop: SmtpNextHop,
  rcpts: string[],
  message: Buffer | string,
  env: Partial<HopEnvelope> = {},
): Promise<{ rcpt: HopReply[]; final?: HopReply }> {
  const tx = hop.begin(envelope(env));
  const rcpt: HopReply[] = [];
  for (const r of rcpts) rcpt.push(await tx.rcpt(r));
  if (!rcpt.some((r) => r.code >= 200 && r.code < 300)) {
    tx.abort();
    return { rcpt };
  }
  const data = await tx.data();
  assert.ok('stream' in data, 'DATA accepted');
  data.stream.end(message);
  return { rcpt, final: await tx.commit() };
}

describe('SmtpNextHop (smtp)', { timeout: 30_000 }, () => {
  let server: CaptureServer;
  let hop: SmtpNextHop;
  let rcptSeen: string[] = [];
  /** MAIL FROM answers, by sender address. */
  const mailRefusals = new Map<string, Error>();

  before(async () => {
    server = await startCaptureServer({
      size: 10_000_000,
      onMailFrom(address, _session, callback) {
        callback(mailRefusals.get(address.address) ?? null);
      },
      onRcptTo(address, _session, callback) {
        rcptSeen.push(address.address);
        if (address.address.startsWith('unknown')) callback(smtpError(550, 'no such user here'));
        else callback();
      },
    });
    hop = new SmtpNextHop(config(server.port), 'edge.test');
  });
  after(async () => {
    await hop.close();
    await server.close();
  });

  it('describes itself and has no recipient limit', () => {
    assert.equal(hop.describe(), `smtp://127.0.0.1:${server.port}`);
    assert.equal(hop.maxRecipients, 0);
  });

  it('passes the answer to each recipient through', async () => {
    const { rcpt, final } = await deliver(
      hop,
      ['unknown@example.org', 'known@example.org'],
      'Subject: x\r\n\r\nhi\r\n',
    );
    assert.deepEqual(rcpt, [
      { code: 550, enhanced: '5.1.1', text: 'no such user here' },
      { code: 250, enhanced: '2.1.5', text: 'Accepted' },
    ]);
    assert.deepEqual(final, { code: 250, enhanced: '2.6.0', text: 'OK: message queued' });
    const last = server.messages.at(-1);
    assert.deepEqual(last?.to, ['known@example.org']);
    assert.equal(last?.from, 'sender@example.org');
  });

  it('answers the refusal of MAIL FROM to every recipient without sending RCPT', async () => {
    mailRefusals.set('blocked@example.org', smtpError(553, 'sender not allowed'));
    rcptSeen = [];
    const tx = hop.begin(envelope({ from: 'blocked@example.org' }));
    const refusal = { code: 553, enhanced: '5.1.3', text: 'sender not allowed' };
    assert.deepEqual(await tx.rcpt('a@example.org'), refusal);
    assert.deepEqual(await tx.rcpt('b@example.org'), refusal);
    assert.deepEqual(await tx.data(), { refused: refusal });
    tx.abort();
    assert.deepEqual(rcptSeen, []);
    // The connection was clean after the refused MAIL FROM and went back to the pool.
    assert.equal(hop.pool.stats().idle, 1);
  });

  it('keeps the message byte for byte through dot-stuffing', async () => {
    const messages = [
      'Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\nlast\r\n',
      '.\r\n',
      '..\r\n.\r\n',
      'no final line break',
      'bare\n.\r\nlf\r\n',
      '',
      `${'x'.repeat(100_000)}\r\n.${'y'.repeat(70_000)}\r\n`,
    ];
    for (const message of messages) {
      const before = server.messages.length;
      const { final } = await deliver(hop, ['known@example.org'], message);
      assert.equal(final?.code, 250);
      assert.equal(server.messages.length, before + 1);
      const expected = message === '' || message.endsWith('\r\n') ? message : `${message}\r\n`;
      assert.equal(
        server.messages.at(-1)?.raw.toString('latin1'),
        expected,
        JSON.stringify(message.slice(0, 40)),
      );
    }
  });

  it('streams a message written in small chunks', async () => {
    const tx = hop.begin(envelope());
    assert.equal((await tx.rcpt('known@example.org')).code, 250);
    const data = await tx.data();
    assert.ok('stream' in data);
    const message = 'a\r\n.b\r\n.\r\n\r\n.';
    for (const ch of message) data.stream.write(ch);
    data.stream.end();
    assert.equal((await tx.commit()).code, 250);
    assert.equal(server.messages.at(-1)?.raw.toString(), `${message}\r\n`);
  });

  it('passes SIZE and BODY on when advertised', async () => {
    await deliver(hop, ['known@example.org'], 'x\r\n', { size: 3, body8bit: true, smtputf8: true });
    assert.deepEqual(server.messages.at(-1)?.mailArgs, { SIZE: '3', BODY: '8BITMIME', SMTPUTF8: true });
  });

  it('reuses one connection for sequential transactions', async () => {
    const server2 = await startCaptureServer();
    const hop2 = new SmtpNextHop(config(server2.port), 'edge.test');
    try {
      await deliver(hop2, ['a@example.org'], 'one\r\n');
      await deliver(hop2, ['b@example.org'], 'two\r\n');
      assert.equal(server2.connections, 1);
      assert.equal(server2.messages.length, 2);
      assert.deepEqual(hop2.pool.stats(), { open: 1, idle: 1, waiting: 0, created: 1 });
    } finally {
      await hop2.close();
      await server2.close();
    }
  });

  it('abort after DATA drops the connection: the next hop never gets the message', async () => {
    const server2 = await startCaptureServer();
    const hop2 = new SmtpNextHop(config(server2.port), 'edge.test');
    try {
      const tx = hop2.begin(envelope());
      assert.equal((await tx.rcpt('a@example.org')).code, 250);
      const data = await tx.data();
      assert.ok('stream' in data);
      data.stream.write('Subject: partial\r\n\r\n');
      data.stream.write(`${'z'.repeat(50_000)}\r\n`);
      await until(() => server2.sockets.size === 1);
      await delay(50);
      tx.abort();
      tx.abort();
      await until(() => server2.cutOff === 1);
      assert.equal(server2.messages.length, 0);
      assert.deepEqual(hop2.pool.stats(), { open: 0, idle: 0, waiting: 0, created: 1 });
      await assert.rejects(tx.commit(), DeliveryError);
      // The next transaction gets a new connection.
      await deliver(hop2, ['b@example.org'], 'next\r\n');
      assert.equal(server2.connections, 2);
      assert.equal(server2.messages.length, 1);
    } finally {
      await hop2.close();
      await server2.close();
    }
  });

  it('abort before DATA resets the transaction and reuses the connection', async () => {
    const server2 = await startCaptureServer();
    const hop2 = new SmtpNextHop(config(server2.port), 'edge.test');
    try {
      const tx = hop2.begin(envelope({ from: 'first@example.org' }));
      assert.equal((await tx.rcpt('a@example.org')).code, 250);
      tx.abort();
      await until(() => hop2.pool.stats().idle === 1);
      // Without RSET, this MAIL FROM would be a nested transaction (503).
      const { rcpt, final } = await deliver(hop2, ['b@example.org'], 'after reset\r\n');
      assert.equal(rcpt[0]?.code, 250);
      assert.equal(final?.code, 250);
      assert.equal(server2.connections, 1);
      assert.deepEqual(
        server2.messages.map((m) => [m.from, m.to]),
        [['sender@example.org', ['b@example.org']]],
      );
      // A transaction that never offered a recipient holds no connection.
      hop2.begin(envelope()).abort();
      assert.equal(hop2.pool.stats().open, 1);
    } finally {
      await hop2.close();
      await server2.close();
    }
  });

  it('a refused DATA is answered and the connection is reset and reused', async () => {
    const server2 = await startCaptureServer({
      onRcptTo: (_a, _s, cb) => cb(smtpError(550, 'nobody')),
    });
    const hop2 = new SmtpNextHop(config(server2.port), 'edge.test');
    try {
      const tx = hop2.begin(envelope());
      assert.equal((await tx.rcpt('a@example.org')).code, 550);
      // Not what the edge does (no accepted recipient), but the refusal must come back, not hang.
      const data = await tx.data();
      assert.ok('refused' in data);
      assert.equal(data.refused.code, 503);
      await until(() => hop2.pool.stats().idle === 1);
    } finally {
      await hop2.close();
      await server2.close();
    }
  });

  it('refuses an SMTPUTF8 transaction itself when the next hop lacks SMTPUTF8', async () => {
    let mails = 0;
    const server2 = await startCaptureServer({
      hideSMTPUTF8: true,
      onMailFrom: (_a, _s, cb) => {
        mails++;
        cb();
      },
    });
    const hop2 = new SmtpNextHop(config(server2.port), 'edge.test');
    try {
      const tx = hop2.begin(envelope({ smtputf8: true }));
      const refusal = { code: 553, enhanced: '5.6.7', text: 'the next hop does not support SMTPUTF8' };
      assert.deepEqual(await tx.rcpt('ü@example.org'), refusal);
      assert.deepEqual(await tx.rcpt('b@example.org'), refusal);
      tx.abort();
      assert.equal(mails, 0);
      // Without SMTPUTF8 in the envelope the same hop takes the message.
      assert.equal((await deliver(hop2, ['b@example.org'], 'ascii\r\n')).final?.code, 250);
      assert.equal(server2.connections, 1);
    } finally {
      await hop2.close();
      await server2.close();
    }
  });

  it('reconnects when a pooled connection was closed by the next hop', async () => {
    const server2 = await startCaptureServer();
    const hop2 = new SmtpNextHop(config(server2.port), 'edge.test');
    try {
      await deliver(hop2, ['a@example.org'], 'one\r\n');
      server2.dropConnections();
      await until(() => hop2.pool.stats().open === 0);
      assert.equal((await deliver(hop2, ['b@example.org'], 'two\r\n')).final?.code, 250);
      assert.equal(server2.connections, 2);
      assert.equal(server2.messages.length, 2);
    } finally {
      await hop2.close();
      await server2.close();
    }
  });

  it('reconnects when the next hop was restarted on the same port', async () => {
    let server2 = await startCaptureServer();
    const port = server2.port;
    const hop2 = new SmtpNextHop(config(port), 'edge.test');
    try {
      await deliver(hop2, ['a@example.org'], 'one\r\n');
      await server2.close();
      server2 = await startCaptureServer({ port: port });
      assert.equal((await deliver(hop2, ['b@example.org'], 'two\r\n')).final?.code, 250);
      assert.equal(server2.messages.length, 1);
    } finally {
      await hop2.close();
      await server2.close();
    }
  });

  it('retries MAIL FROM on a new connection when a reused one is lost at the first command', async () => {
    const server2 = await startCaptureServer({
      onMailFrom(_address, session, callback) {
        // The second transaction on a connection: the next hop drops it (as if its idle timeout hit just
        // before the command arrived).
        if (session.transaction > 1) server2.sockets.get(session.remotePort)?.destroy();
        else callback();
      },
    });
    const hop2 = new SmtpNextHop(config(server2.port), 'edge.test');
    try {
      await deliver(hop2, ['a@example.org'], 'one\r\n');
      const { rcpt, final } = await deliver(hop2, ['b@example.org'], 'two\r\n');
      assert.equal(rcpt[0]?.code, 250);
      assert.equal(final?.code, 250);
      assert.equal(server2.connections, 2);
      assert.equal(server2.messages.length, 2);
    } finally {
      await hop2.close();
      await server2.close();
    }
  });

  it('retries MAIL FROM on a new connection when a reused one answers 421', async () => {
    const server2 = await startCaptureServer({
      onMailFrom(_address, session, callback) {
        callback(session.transaction > 1 ? smtpError(421, 'idle too long') : null);
      },
    });
    const hop2 = new SmtpNextHop(config(server2.port), 'edge.test');
    try {
      await deliver(hop2, ['a@example.org'], 'one\r\n');
      const { final } = await deliver(hop2, ['b@example.org'], 'two\r\n');
      assert.equal(final?.code, 250);
      assert.equal(server2.connections, 2);
    } finally {
      await hop2.close();
      await server2.close();
    }
  });

  it('rejects with DeliveryError when the next hop is unreachable', async () => {
    const server2 = await startCaptureServer();
    const port = server2.port;
    await server2.close();
    const hop2 = new SmtpNextHop(config(port), 'edge.test');
    try {
      const tx = hop2.begin(envelope());
      await assert.rejects(tx.rcpt('a@example.org'), (err: unknown) => {
        assert.ok(err instanceof DeliveryError);
        assert.equal(err.reasonCode, 'queue.nexthop_failed');
        return true;
      });
      // The failure sticks to the transaction.
      await assert.rejects(tx.rcpt('b@example.org'), DeliveryError);
      tx.abort();
      assert.equal(hop2.pool.stats().open, 0);
    } finally {
      await hop2.close();
    }
  });

  it('completes a transaction over opportunistic STARTTLS', async () => {
    let secure = false;
    const server2 = await startCaptureServer({
      disabledCommands: ['AUTH'],
      answer: (_msg, session) => {
        secure = session.secure;
        return undefined;
      },
    });
    const hop2 = new SmtpNextHop(config(server2.port, { opportunisticTls: true }), 'edge.test');
    try {
      const { final } = await deliver(hop2, ['a@example.org'], '.secret\r\n');
      assert.equal(final?.code, 250);
      assert.equal(secure, true);
      assert.equal(server2.messages.at(-1)?.raw.toString(), '.secret\r\n');
    } finally {
      await hop2.close();
      await server2.close();
    }
  });
});

describe('SmtpNextHop (lmtp)', { timeout: 20_000 }, () => {
  let server: CaptureServer;
  let hop: SmtpNextHop;

  before(async () => {
    server = await startCaptureServer({
      lmtp: true,
      answer: (msg) =>
        msg.to.map((to) => (to.startsWith('full') ? smtpError(452, 'mailbox full') : 'delivered')),
    });
    hop = new SmtpNextHop(config(server.port, { type: 'lmtp' }), 'edge.test');
  });
  after(async () => {
    await hop.close();
    await server.close();
  });

  it('accepts one recipient per transaction', () => {
    assert.equal(hop.maxRecipients, 1);
    assert.equal(hop.describe(), `lmtp://127.0.0.1:${server.port}`);
  });

  it('returns the per-recipient reply after the final dot', async () => {
    assert.deepEqual((await deliver(hop, ['alice@example.org'], 'hello\r\n')).final, {
      code: 250,
      enhanced: '2.6.0',
      text: 'delivered',
    });
    assert.deepEqual((await deliver(hop, ['full@example.org'], 'hello\r\n')).final, {
      code: 452,
      enhanced: '4.2.2',
      text: 'mailbox full',
    });
    // Both on one connection: a per-recipient refusal leaves it usable.
    assert.equal(server.connections, 1);
  });

  it('with several recipients returns the first refusal', async () => {
    const { final } = await deliver(hop, ['alice@example.org', 'full@example.org'], 'x\r\n');
    assert.equal(final?.code, 452);
  });
});

describe('SmtpNextHop failover', () => {
  it('uses the next server when the first cannot be reached, and the first again once it is back', async () => {
    const second = await startCaptureServer();
    const downPort = await (await import('@smtpguard/testing')).freePort();
    const hop = new SmtpNextHop(
      config(downPort, { failover: [{ host: '127.0.0.1', port: second.port }] }),
      'edge.example',
    );
    try {
      assert.match(hop.describe(), new RegExp(`failover 127\\.0\\.0\\.1:${second.port}`));
      const tx = hop.begin(envelope());
      assert.equal((await tx.rcpt('a@example.org')).code, 250);
      const data = await tx.data();
      assert.ok('stream' in data);
      data.stream.end('Subject: failover\r\n\r\nx\r\n');
      assert.equal((await tx.commit()).code, 250);
      assert.equal(second.messages.length, 1);
    } finally {
      await hop.close();
      await second.close();
    }
  });

  it('fails with a DeliveryError when no server can be reached', async () => {
    const { freePort } = await import('@smtpguard/testing');
    const hop = new SmtpNextHop(
      config(await freePort(), { failover: [{ host: '127.0.0.1', port: await freePort() }] }),
      'edge.example',
    );
    try {
      await assert.rejects(hop.begin(envelope()).rcpt('a@example.org'), DeliveryError);
    } finally {
      await hop.close();
    }
  });
});
