// PROXY protocol end to end: v1 and v2 headers from trusted load balancers give the real client address to every
// check, decision and the Received header; a PROXY header from anyone else is refused; a trusted load balancer that
// sends none (or junk) is refused; and a real HAProxy in front of the edge works.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type CaptureServer, startCaptureServer, waitFor } from '@smtpguard/testing';
import {
  Command,
  INETProtocol,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  Peer,
  TransportProtocol,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { findDecision, readDecisions } from '../harness/decision-file.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { type Haproxy, startHaproxy } from '../harness/haproxy.js';
import { RawSmtp } from '../harness/raw-smtp.js';
import { unref } from '../harness/reference.js';
import { startTestSystem, type TestSystem } from '../harness/system.js';

let dns: DnsServer;
let hop: CaptureServer;
let sys: TestSystem;
let haproxy: Haproxy<'mx'>;
const GREETING = '220 mx.example.test ESMTP smtpguard ready';

const v1 = (client: string, port = 40000) =>
  new V1ProxyProtocol(INETProtocol.TCP4, new Peer(client, port), new Peer('192.0.2.1', 25)).build();
const v2ipv6 = (bytes: number[], port: number) =>
  Buffer.from(
    new V2ProxyProtocol(
      Command.PROXY,
      TransportProtocol.STREAM,
      new IPv6ProxyAddress(
        IPv6Address.createFrom(bytes),
        port,
        IPv6Address.createFrom([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1]),
        25,
      ),
    ).build(),
  );
const v2local = () =>
  Buffer.from(
    new V2ProxyProtocol(
      Command.LOCAL,
      TransportProtocol.UNSPEC,
      new IPv4ProxyAddress(IPv4Address.createFrom([0, 0, 0, 0]), 0, IPv4Address.createFrom([0, 0, 0, 0]), 0),
    ).build(),
  );

before(async () => {
  // 127.0.0.2 is the RFC 5782 test point a list must answer to stay enabled.
  dns = await startDnsServer({
    '7.113.0.203.dnsbl.test': { A: ['127.0.0.2'] },
    '2.0.0.127.dnsbl.test': { A: ['127.0.0.2'] },
  });
  hop = await startCaptureServer();
  sys = await startTestSystem({
    dnsServer: dns.address,
    nextHopPort: hop.port,
    override: (c) => {
      c.edge.checks.greylist = { enabled: false };
      c.edge.listeners.mx.proxyProtocol = {
        trustedProxies: ['127.0.0.90', '127.0.0.91', '127.0.0.95'],
        headerTimeoutMs: 500,
      };
    },
  });
  haproxy = await startHaproxy({ mx: [{ port: sys.mxPort, source: '127.0.0.95' }] });
});

after(async () => {
  await haproxy?.stop();
  await sys?.stop();
  await hop?.close();
  await dns?.close();
});

/** A connection from a trusted load balancer that sends `header` first. */
async function viaProxy(
  header: string | Buffer,
  from = '127.0.0.90',
): Promise<{ c: RawSmtp; greeting: string }> {
  const c = await RawSmtp.connect(sys.mxPort, from);
  c.write(header);
  return { c, greeting: await c.read() };
}

async function deliver(c: RawSmtp, token: string): Promise<string> {
  assert.match(await c.cmd('EHLO client.example'), /^250-/);
  assert.match(await c.cmd(`MAIL FROM:<${token}@sender.example>`), /^250 /);
  const rcpt = await c.cmd('RCPT TO:<alice@example.test>');
  if (!rcpt.startsWith('250')) return rcpt;
  assert.equal(unref(await c.cmd('DATA')), '354 End data with <CR><LF>.<CR><LF>');
  c.write(`Subject: ${token}\r\n\r\nhello\r\n.\r\n`);
  return c.read();
}

describe('PROXY protocol', () => {
  it('v1 from a trusted load balancer: the real client is in the decisions and the Received header', async () => {
    const { c, greeting } = await viaProxy(v1('198.51.100.20'));
    assert.equal(greeting, GREETING);
    assert.match(
      await c.cmd('EHLO client.example'),
      /^250-mx\.example\.test Hello client\.example \[198\.51\.100\.20\]/,
    );
    await c.cmd('RSET');
    assert.match(await deliver(c, 'proxy-v1'), /^250 2\.0\.0 Ok: queued as /);
    await c.quit();
    const got = hop.messages.find((m) => m.from === 'proxy-v1@sender.example');
    // Received-SPF and Authentication-Results go above it (RFC 7208 9.1, RFC 8601).
    assert.match(got?.raw.toString() ?? '', /^Received: from client\.example \(\[198\.51\.100\.20\]\)/m);
    const d = await findDecision(
      sys.dir,
      (x) => x.reasonCode === 'queue.accepted' && x.session?.sender === 'proxy-v1@sender.example',
      'accepted',
    );
    assert.equal(d.session?.clientIp, '198.51.100.20');
  });

  it('v2 with an IPv6 client, and the DNS lists ask about the real client', async () => {
    const client = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    const { c, greeting } = await viaProxy(v2ipv6(client, 41000), '127.0.0.91');
    assert.equal(greeting, GREETING);
    assert.match(await c.cmd('EHLO client.example'), /Hello client\.example \[2001:db8::7\]/);
    await c.quit();

    const listed = await viaProxy(v1('203.0.113.7'));
    const refused = await deliver(listed.c, 'proxy-listed');
    assert.equal(
      unref(refused),
      '554 5.7.1 The IP address of the sender (203.0.113.7) is listed on dnsbl.test and was refused',
    );
    await listed.c.quit();
    assert.ok(
      dns.queries.includes('A 7.113.0.203.dnsbl.test'),
      'the DNS list was asked about the real client',
    );
  });

  it('v2 LOCAL (a health check of the load balancer itself) is the load balancer', async () => {
    const { c, greeting } = await viaProxy(v2local());
    assert.equal(greeting, GREETING);
    assert.match(await c.cmd('EHLO lb.example'), /Hello lb\.example \[127\.0\.0\.90\]/);
    await c.quit();
  });

  it('refuses a PROXY header from an address that is not a trusted load balancer (554 5.7.0)', async () => {
    const { c, greeting } = await RawSmtp.open(sys.mxPort, '127.0.0.92');
    assert.equal(greeting, GREETING);
    c.write(v1('8.8.8.8'));
    assert.equal(
      unref(await c.read()),
      '554 5.7.0 PROXY protocol is not accepted from 127.0.0.92; closing connection',
    );
    await c.closed;
    await findDecision(
      sys.dir,
      (x) => x.reasonCode === 'connect.proxy_untrusted' && x.session?.clientIp === '127.0.0.92',
      'connect.proxy_untrusted',
    );
  });

  it('refuses a trusted load balancer that sends junk or nothing (421 4.7.0)', async () => {
    const junk = await viaProxy('EHLO not-a-proxy-header\r\n');
    assert.equal(unref(junk.greeting), '421 4.7.0 Invalid PROXY protocol header; closing connection');
    await junk.c.closed;
    const silent = await RawSmtp.connect(sys.mxPort, '127.0.0.91');
    const t0 = Date.now();
    assert.equal(
      unref(await silent.read(3000)),
      '421 4.7.0 Invalid PROXY protocol header; closing connection',
    );
    assert.ok(Date.now() - t0 >= 450, 'after the header timeout');
    const d = await findDecision(
      sys.dir,
      (x) => x.reasonCode === 'connect.proxy_invalid' && /within 500 ms/.test(x.detail ?? ''),
      'connect.proxy_invalid (timeout)',
    );
    assert.equal(d.session?.clientIp, '127.0.0.91');
  });

  it('works behind a real HAProxy sending PROXY v2: the client address crosses it', async () => {
    const { c, greeting } = await RawSmtp.open(haproxy.ports.mx, '127.0.0.96');
    assert.equal(greeting, GREETING);
    assert.match(await deliver(c, 'via-haproxy'), /^250 2\.0\.0 Ok: queued as /);
    await c.quit();
    const d = await waitFor('decision through HAProxy', () =>
      findDecision(
        sys.dir,
        (x) => x.reasonCode === 'queue.accepted' && x.session?.sender === 'via-haproxy@sender.example',
        'via haproxy',
      ),
    );
    assert.equal(d.session?.clientIp, '127.0.0.96');
  });

  it("takes HAProxy's health checks (PROXY v2 LOCAL, then a reset) for what they are: no session, no error", async () => {
    // Checks run every 500 ms since HAProxy started; two more at least.
    await new Promise((r) => setTimeout(r, 1200));
    const decisions = await readDecisions(sys.dir);
    const unknown = decisions.filter((x) => !x.session?.clientIp || x.session.clientIp === '127.0.0.95');
    assert.deepEqual(
      unknown.map((x) => `${x.check} ${x.reasonCode} ${x.session?.clientIp}`),
      [],
      'decisions about a health check',
    );
  });
});
