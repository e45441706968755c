// TLS end to end: certificates from files (verified by the client), SNI, the minimum version, implicit TLS on
// the submissions listener, no clear-text AUTH on a listener that is not bound to loopback, no STARTTLS without a
// certificate, and a renewed certificate picked up without a restart.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '@smtpguard/testing';
import { generate } from 'selfsigned';
import { findDecision } from '../harness/decision-file.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { RawSmtp } from '../harness/raw-smtp.js';
import { unref } from '../harness/reference.js';
import { ALICE, buildConfig, startTestSystem, type TestSystem, writeConfig } from '../harness/system.js';

let dns: DnsServer;
let sys: TestSystem;
let dir: string;
let submissionsPort: number;
const certs: Record<string, { key: string; cert: string }> = {};
const plain = Buffer.from(`\0${ALICE.user}\0${ALICE.pass}`).toString('base64');

async function certificate(name: string): Promise<{ key: string; cert: string }> {
  const pems = await generate([{ name: 'commonName', value: name }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: name }] }],
  });
  return { key: pems.private, cert: pems.cert };
}

before(async () => {
  dns = await startDnsServer({});
  dir = await mkdtemp(join(tmpdir(), 'sg-tls-'));
  certs.main = await certificate('mx.example.test');
  certs.other = await certificate('mail.other.test');
  certs.renewed = await certificate('mx.example.test');
  for (const [name, c] of Object.entries(certs)) {
    await writeFile(join(dir, `${name}.crt`), c.cert);
    await writeFile(join(dir, `${name}.key`), c.key);
  }
  await writeFile(join(dir, 'live.crt'), certs.main?.cert ?? '');
  await writeFile(join(dir, 'live.key'), certs.main?.key ?? '');
  submissionsPort = await freePort();
  sys = await startTestSystem({
    dnsServer: dns.address,
    override: (c) => {
      c.edge.allowInsecureAuth = false;
      c.edge.tls = {
        certFile: join(dir, 'live.crt'),
        keyFile: join(dir, 'live.key'),
        sni: { 'mail.other.test': { certFile: join(dir, 'other.crt'), keyFile: join(dir, 'other.key') } },
      };
      // Bound to every address (clients still connect over loopback): not a loopback listener, so AUTH needs TLS.
      c.edge.listeners.submission.host = '0.0.0.0';
      c.edge.listeners.submissions = { enabled: true, host: '0.0.0.0', port: submissionsPort };
      // The MX listener has a TLS setting of its own without a certificate: no STARTTLS there.
      c.edge.listeners.mx.tls = {};
    },
  });
});

after(async () => {
  await sys?.stop();
  await dns?.close();
});

describe('TLS', () => {
  it('STARTTLS presents the configured certificate, valid for the host name, and SNI picks another', async () => {
    const a = (await RawSmtp.open(sys.submissionPort, '127.0.0.70')).c;
    assert.match(await a.cmd('EHLO client.example'), /\r\n250-STARTTLS\r\n/);
    assert.equal(unref(await a.cmd('STARTTLS')), '220 2.0.0 Ready to start TLS');
    const cert = await a.startTls({ ca: certs.main?.cert, servername: 'mx.example.test' });
    assert.equal(cert.subject.CN, 'mx.example.test');
    assert.match(await a.cmd('EHLO client.example'), /AUTH PLAIN LOGIN/);
    assert.equal(unref(await a.cmd(`AUTH PLAIN ${plain}`)), '235 2.7.0 Authentication successful');
    await a.quit();

    const b = (await RawSmtp.open(sys.submissionPort, '127.0.0.70')).c;
    await b.cmd('EHLO client.example');
    await b.cmd('STARTTLS');
    const other = await b.startTls({ ca: certs.other?.cert, servername: 'mail.other.test' });
    assert.equal(other.subject.CN, 'mail.other.test');
    await b.quit();
  });

  it('refuses TLS older than 1.2', async () => {
    const c = (await RawSmtp.open(sys.submissionPort, '127.0.0.71')).c;
    await c.cmd('EHLO client.example');
    assert.equal(unref(await c.cmd('STARTTLS')), '220 2.0.0 Ready to start TLS');
    await assert.rejects(c.startTls({ maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }));
    c.destroy();
  });

  it('takes no password in clear text on a listener that is not bound to loopback (530 5.7.0)', async () => {
    const ip = '127.0.0.72';
    const c = (await RawSmtp.open(sys.submissionPort, ip)).c;
    const ehlo = await c.cmd('EHLO client.example');
    assert.ok(!/AUTH/.test(ehlo), 'AUTH is not offered before TLS');
    assert.equal(unref(await c.cmd(`AUTH PLAIN ${plain}`)), '530 5.7.0 Must issue a STARTTLS command first');
    const d = await findDecision(
      sys.dir,
      (x) => x.reasonCode === 'auth.tls_required' && x.session?.clientIp === ip,
      'auth.tls_required',
    );
    assert.equal(d.reply?.code, 530);
    await c.quit();
  });

  it('speaks TLS from the first byte on the submissions listener (RFC 8314)', async () => {
    const { c, greeting, cert } = await RawSmtp.openTls(submissionsPort, {
      ca: certs.main?.cert,
      servername: 'mx.example.test',
      localAddress: '127.0.0.73',
    });
    assert.equal(greeting, '220 mx.example.test ESMTP smtpguard ready');
    assert.equal(cert.subject.CN, 'mx.example.test');
    const ehlo = await c.cmd('EHLO client.example');
    assert.match(ehlo, /AUTH PLAIN LOGIN/);
    assert.ok(!/STARTTLS/.test(ehlo));
    assert.equal(unref(await c.cmd(`AUTH PLAIN ${plain}`)), '235 2.7.0 Authentication successful');
    assert.match(await c.cmd(`MAIL FROM:<${ALICE.user}>`), /^250 /);
    assert.match(await c.cmd('RCPT TO:<friend@remote.example>'), /^250 /);
    assert.equal(unref(await c.cmd('DATA')), '354 End data with <CR><LF>.<CR><LF>');
    c.write('Subject: implicit tls\r\n\r\nhi\r\n.\r\n');
    assert.match(await c.read(), /^250 2\.0\.0 Ok: queued as /);
    await c.quit();
    const d = await findDecision(
      sys.dir,
      (x) => x.reasonCode === 'queue.accepted' && x.session?.clientIp === '127.0.0.73',
      'queue.accepted over implicit TLS',
    );
    assert.equal((d.session as { listener?: string }).listener, 'LISTENER_SUBMISSIONS');
    assert.equal((d.session as { tls?: boolean }).tls, true);
  });

  it('offers no STARTTLS where no certificate is configured (502 5.5.1), never a demo certificate', async () => {
    const ip = '127.0.0.74';
    const c = (await RawSmtp.open(sys.mxPort, ip)).c;
    assert.ok(!/STARTTLS/.test(await c.cmd('EHLO client.example')));
    assert.equal(unref(await c.cmd('STARTTLS')), '502 5.5.1 STARTTLS is not offered here');
    await findDecision(
      sys.dir,
      (x) => x.reasonCode === 'protocol.tls_not_offered' && x.session?.clientIp === ip,
      'protocol.tls_not_offered',
    );
    await c.quit();
  });

  it('picks up a renewed certificate without a restart', async () => {
    const fingerprint = async () => {
      const c = (await RawSmtp.open(sys.submissionPort, '127.0.0.75')).c;
      await c.cmd('EHLO client.example');
      await c.cmd('STARTTLS');
      const cert = await c.startTls();
      c.destroy();
      return cert.fingerprint256;
    };
    const before = await fingerprint();
    await writeFile(join(dir, 'live.key'), certs.renewed?.key ?? '');
    await writeFile(join(dir, 'live.crt'), certs.renewed?.cert ?? '');
    const renewed = await waitFor(
      'the renewed certificate',
      async () => {
        const f = await fingerprint();
        return f !== before ? f : undefined;
      },
      10_000,
    );
    assert.notEqual(renewed, before);
    assert.ok(sys.system.logs.some((l) => l.msg === 'TLS certificate reloaded'));
  });
});

describe('TLS configuration errors', () => {
  it('an implicit-TLS listener without a certificate is a start-up error naming the key', async () => {
    const { config } = await buildConfig({ dnsServer: dns.address });
    config.edge.listeners.submissions = { enabled: true, port: await freePort() };
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
    assert.match(r.stderr, /edge\.listeners\.submissions: implicit TLS needs a certificate/);
  });
});
