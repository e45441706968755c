// Health, telemetry export and graceful shutdown of the running services.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import { type RunningSystem, startSystem } from '@smtpguard/launcher';
import { freePort, waitFor } from '@smtpguard/testing';
import { service as healthService } from 'grpc-health-check';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { RawSmtp } from '../harness/raw-smtp.js';
import { unref } from '../harness/reference.js';
import { smtpSend } from '../harness/smtp-client.js';
import { ALICE, buildConfig, writeConfig } from '../harness/system.js';

let dns: DnsServer;
let sys: RunningSystem;
let config: Awaited<ReturnType<typeof buildConfig>>;
let configPath: string;
const otlp: Array<{ path: string; body: Buffer }> = [];
const collector = createServer((req: IncomingMessage, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    otlp.push({ path: req.url ?? '', body: Buffer.concat(chunks) });
    res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  });
});

before(async () => {
  dns = await startDnsServer({});
  const collectorPort = await freePort();
  await new Promise<void>((r) => collector.listen(collectorPort, '127.0.0.1', r));
  config = await buildConfig({ dnsServer: dns.address });
  config.config.edge.shutdownGraceMs = 1500;
  ({ configPath } = await writeConfig(config.config));
  sys = await startSystem({
    configPath,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collectorPort}`,
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_METRIC_EXPORT_INTERVAL: '600000',
    },
  });
});

after(async () => {
  await sys?.stop(5000);
  collector.close();
  await dns?.close();
});

describe('lifecycle', () => {
  it('every backend answers grpc.health.v1 SERVING, for the server and its service', async () => {
    const Health = makeGenericClientConstructor(healthService, 'Health');
    const targets: Array<[string, string]> = [
      [config.config.auth.listen, 'smtpguard.auth.v1.AuthService'],
      [config.config.reputation.listen, 'smtpguard.reputation.v1.ReputationService'],
      [config.config.greylist.listen, 'smtpguard.greylist.v1.GreylistService'],
    ];
    for (const [address, name] of targets) {
      const client = new Health(address, credentials.createInsecure());
      for (const svc of ['', name]) {
        const res = await new Promise<{ status: string | number }>((resolve, reject) =>
          client.makeUnaryRequest(
            '/grpc.health.v1.Health/Check',
            (x: { service: string }) => Buffer.from([0x0a, x.service.length, ...Buffer.from(x.service)]),
            (b: Buffer) => ({ status: b.length ? (b[1] as number) : 0 }),
            { service: svc },
            (err, r) => (err || !r ? reject(err) : resolve(r)),
          ),
        );
        assert.equal(res.status, 1, `${address} ${svc || '(server)'} is SERVING`);
      }
      client.close();
    }
  });

  it('exports traces over OTLP: the SMTP session and the gRPC calls it made', async () => {
    const r = await smtpSend({
      port: config.submissionPort,
      auth: ALICE,
      from: ALICE.user,
      to: ['alice@example.test'],
      message: 'Subject: traced\r\n\r\nbody\r\n',
    });
    assert.equal(r.code, 250, r.response);
    const has = (needle: string) => otlp.some((x) => x.path === '/v1/traces' && x.body.includes(needle));
    await waitFor(
      'edge spans',
      () => has('smtpguard-smtp-edge') && has('smtp.session') && has('rcpt recipient'),
      10_000,
    );
    await waitFor(
      'auth server span',
      () => has('smtpguard-auth') && has('AuthService/ResolveRecipient'),
      10_000,
    );
  });

  it('on SIGTERM: idle sessions get 421 at once, transactions finish within the grace period, the rest get 421', async () => {
    const edge = sys.services.get('smtp-edge');
    assert.ok(edge);
    const plain = Buffer.from(`\0${ALICE.user}\0${ALICE.pass}`).toString('base64');
    const inTransaction = async (ip: string) => {
      const { c } = await RawSmtp.open(config.submissionPort, ip);
      assert.match(await c.cmd('EHLO client.example'), /^250-/);
      assert.match(await c.cmd(`AUTH PLAIN ${plain}`), /^235 /);
      assert.match(await c.cmd(`MAIL FROM:<${ALICE.user}>`), /^250 /);
      assert.match(await c.cmd('RCPT TO:<friend@remote.example>'), /^250 /);
      return c;
    };
    const idle = (await RawSmtp.open(config.submissionPort, '127.0.0.60')).c;
    assert.match(await idle.cmd('EHLO client.example'), /^250-/);
    const finishing = await inTransaction('127.0.0.61');
    const stuck = await inTransaction('127.0.0.62');

    const t0 = Date.now();
    edge.child.kill('SIGTERM');
    const shutdown =
      /^421 4\.3\.2 mx\.example\.test is shutting down, please try again later \(ref [0-9a-v]{8}\)$/;
    assert.match(await idle.read(1000), shutdown, 'a session between transactions is told at once');
    await idle.closed;
    // The listener no longer accepts connections.
    await waitFor('listener closed', async () => {
      const refused = await new Promise<boolean>((resolve) => {
        const c = tcpConnect(config.submissionPort, '127.0.0.1');
        c.once('connect', () => {
          c.destroy();
          resolve(false);
        });
        c.once('error', () => resolve(true));
      });
      return refused || undefined;
    });
    // A transaction under way finishes: its message is accepted (and kept), then the session is closed.
    assert.equal(unref(await finishing.cmd('DATA')), '354 End data with <CR><LF>.<CR><LF>');
    finishing.write('Subject: during-shutdown\r\n\r\nstill accepted\r\n.\r\n');
    const accepted = await finishing.read();
    assert.match(accepted, /^250 2\.0\.0 Ok: queued as ([0-9A-F]{20})$/);
    assert.match(await finishing.read(1000), shutdown);
    const id = /queued as (\w+)/.exec(accepted)?.[1] ?? '';
    const spool = join(
      config.config.stateDir === 'state' ? dirname(configPath) : '',
      'state',
      'spool',
      'new',
    );
    assert.ok(
      (await readdir(spool)).some((f) => f.includes(id)),
      'the message is in the spool',
    );
    // A transaction that does not finish gets the grace period, then 421.
    assert.match(await stuck.read(3000), shutdown);
    const waited = Date.now() - t0;
    assert.ok(waited >= 1500, `the stuck transaction got the grace period (closed after ${waited} ms)`);
    assert.equal(await edge.exited, 0);
  });
});
