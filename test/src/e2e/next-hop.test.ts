// The next hop without losses or doubles: kill -9 of the edge in the middle of a message, the next hop lost in
// the middle of a message, an LMTP next hop (one recipient per transaction), and a next hop that would loop.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startService } from '@smtpguard/launcher';
import { startCaptureServer, waitFor } from '@smtpguard/testing';
import { findDecision } from '../harness/decision-file.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { RawSmtp } from '../harness/raw-smtp.js';
import { unref } from '../harness/reference.js';
import {
  buildConfig,
  type LooseConfig,
  startTestSystem,
  type TestSystem,
  writeConfig,
} from '../harness/system.js';

let dns: DnsServer;
const noGreylisting = (c: LooseConfig) => {
  c.edge.checks.greylist = { enabled: false };
};

before(async () => {
  dns = await startDnsServer({});
});
after(async () => {
  await dns?.close();
});

/** Opens a transaction for alice and starts the message; returns the session in DATA. */
async function inData(port: number, ip: string): Promise<RawSmtp> {
  const { c } = await RawSmtp.open(port, ip);
  assert.match(await c.cmd('EHLO client.example'), /^250-/);
  assert.match(await c.cmd('MAIL FROM:<sender@sender.example>'), /^250 /);
  assert.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
  assert.equal(unref(await c.cmd('DATA')), '354 End data with <CR><LF>.<CR><LF>');
  return c;
}

/** The whole message: headers with a token, a body large enough to be mid-way when the fault strikes. */
const message = (token: string) =>
  `Subject: ${token}\r\nX-Token: ${token}\r\n\r\n${`${'z'.repeat(70)}\r\n`.repeat(20_000)}`;

async function sendWhole(port: number, ip: string, token: string): Promise<string> {
  const c = await inData(port, ip);
  c.write(`${message(token)}.\r\n`);
  const reply = await c.read(20_000);
  await c.quit();
  return reply;
}

/** Kills the edge with SIGKILL and starts a new one on the same config. */
async function restartEdgeAfterKill(sys: TestSystem): Promise<void> {
  const edge = sys.system.services.get('smtp-edge');
  assert.ok(edge);
  edge.child.kill('SIGKILL');
  await edge.exited;
  const fresh = await startService('smtp-edge', { configPath: sys.configPath }, sys.system.logs);
  sys.system.services.set('smtp-edge', fresh);
}

describe('kill -9 of the edge in the middle of a message', () => {
  it('SMTP next hop: the transaction is dropped there, nothing delivered; the retry arrives exactly once', async () => {
    const hop = await startCaptureServer();
    const sys = await startTestSystem({
      dnsServer: dns.address,
      nextHopPort: hop.port,
      override: noGreylisting,
    });
    try {
      const token = `kill9-smtp-${Date.now()}`;
      const c = await inData(sys.mxPort, '127.0.5.1');
      const whole = message(token);
      c.write(whole.slice(0, whole.length / 2));
      // The next hop has the transaction open (MAIL, RCPT) while the edge holds the message; the edge dies.
      await waitFor('the next hop transaction', () => hop.sockets.size > 0 || undefined);
      await new Promise((r) => setTimeout(r, 200));
      await restartEdgeAfterKill(sys);
      await c.closed;
      await waitFor('the next hop connection to drop', () => hop.sockets.size === 0 || undefined);
      assert.equal(hop.messages.filter((m) => m.raw.includes(token)).length, 0, 'nothing delivered');
      // The client was never told 250; it retries, and the message arrives once.
      assert.match(await sendWhole(sys.mxPort, '127.0.5.1', token), /^250 2\.0\.0 Ok: queued as /);
      assert.equal(hop.messages.filter((m) => m.raw.includes(token)).length, 1);
    } finally {
      await sys.stop();
      await hop.close();
    }
  });

  it('spool: no file in new/ for the partial message, one for the retry', async () => {
    const sys = await startTestSystem({ dnsServer: dns.address, override: noGreylisting });
    try {
      const spool = join(sys.dir, 'state', 'spool', 'new');
      const token = `kill9-spool-${Date.now()}`;
      const c = await inData(sys.mxPort, '127.0.5.2');
      const whole = message(token);
      c.write(whole.slice(0, whole.length / 2));
      await new Promise((r) => setTimeout(r, 300));
      await restartEdgeAfterKill(sys);
      await c.closed;
      assert.deepEqual(await readdir(spool), []);
      assert.match(await sendWhole(sys.mxPort, '127.0.5.2', token), /^250 /);
      assert.equal((await readdir(spool)).length, 1);
    } finally {
      await sys.stop();
    }
  });
});

describe('the next hop in trouble', () => {
  it('lost in the middle of a message: 451 4.4.1, nothing kept; the retry is delivered once', async () => {
    let hop = await startCaptureServer();
    const port = hop.port;
    const sys = await startTestSystem({ dnsServer: dns.address, nextHopPort: port, override: noGreylisting });
    try {
      const token = `hop-lost-${Date.now()}`;
      const c = await inData(sys.mxPort, '127.0.5.3');
      const whole = message(token);
      c.write(whole.slice(0, whole.length / 2));
      await new Promise((r) => setTimeout(r, 200));
      await hop.close();
      c.write(`${whole.slice(whole.length / 2)}.\r\n`);
      const reply = await c.read(10_000);
      assert.equal(
        unref(reply),
        '451 4.4.1 Message not accepted: the next hop is unavailable, please try again later',
      );
      await c.quit();
      const d = await findDecision(
        sys.dir,
        (x) => x.reasonCode === 'queue.nexthop_failed' && x.session?.clientIp === '127.0.5.3',
        'queue.nexthop_failed',
      );
      assert.equal(d.phase, 'PHASE_QUEUE');
      hop = await startCaptureServer({ port });
      assert.match(await sendWhole(sys.mxPort, '127.0.5.3', token), /^250 /);
      assert.equal(hop.messages.filter((m) => m.raw.includes(token)).length, 1);
    } finally {
      await sys.stop();
      await hop.close();
    }
  });

  it('LMTP: one recipient per transaction (452 4.5.3 for the others), each answer exact', async () => {
    const hop = await startCaptureServer({ lmtp: true });
    const sys = await startTestSystem({
      dnsServer: dns.address,
      nextHopPort: hop.port,
      override: (c) => {
        noGreylisting(c);
        c.edge.nextHop.type = 'lmtp';
        c.auth.domains[0].aliases.sales = ['alice@example.test'];
      },
    });
    try {
      const { c } = await RawSmtp.open(sys.mxPort, '127.0.5.4');
      assert.match(
        await c.cmd('LHLO client.example'),
        /^502 5\.5\.1 LHLO: command not implemented \(ref [0-9a-v]{8}\)$/,
      );
      assert.match(await c.cmd('EHLO client.example'), /^250-/);
      assert.match(await c.cmd('MAIL FROM:<sender@sender.example>'), /^250 /);
      assert.equal(
        unref(await c.cmd('RCPT TO:<alice@example.test>')),
        '250 2.1.5 Recipient <alice@example.test> OK',
      );
      assert.equal(
        unref(await c.cmd('RCPT TO:<sales@example.test>')),
        '452 4.5.3 One recipient per transaction here, send the others in another transaction',
      );
      assert.equal(unref(await c.cmd('DATA')), '354 End data with <CR><LF>.<CR><LF>');
      c.write('Subject: lmtp-one\r\n\r\nhello\r\n.\r\n');
      assert.match(await c.read(), /^250 2\.0\.0 Ok: queued as /);
      await c.quit();
      const got = hop.messages.filter((m) => m.raw.includes('lmtp-one'));
      assert.deepEqual(
        got.map((m) => m.to),
        [['alice@example.test']],
      );
    } finally {
      await sys.stop();
      await hop.close();
    }
  });

  it('a next hop that is the edge itself is a start-up error naming the key', async () => {
    const { config, mxPort } = await buildConfig({ dnsServer: dns.address });
    config.edge.nextHop = { type: 'smtp', host: '127.0.0.1', port: mxPort };
    const { configPath } = await writeConfig(config);
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const r = spawnSync(
      process.execPath,
      [join(root, 'services/smtp-edge/dist/main.js'), '--config', configPath],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `edge\\.nextHop: 127\\.0\\.0\\.1:${mxPort} is the edge's own mx listener \\(127\\.0\\.0\\.1:${mxPort}\\); mail would loop`,
      ),
    );
  });
});
