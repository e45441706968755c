// Embedded mode and every failure the skeleton must answer clearly: bad config, backends down,
// NATS down (buffer or exit), with real processes, a real nats-server and real SMTP clients.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startService, startSystem } from '@smtpguard/launcher';
import { freePort, startNats, waitFor } from '@smtpguard/testing';
import { DecisionTap } from '../harness/decisions.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { smtpSend } from '../harness/smtp-client.js';
import {
  ALICE,
  buildConfig,
  startTestSystem,
  type TestSystem,
  testMessage,
  writeConfig,
} from '../harness/system.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const node = process.execPath;
let dns: DnsServer;

before(async () => {
  dns = await startDnsServer({}, ['broken.test']);
});
after(async () => {
  await dns?.close();
});

const submit = (sys: TestSystem, subject: string) =>
  smtpSend({
    port: sys.submissionPort,
    auth: ALICE,
    from: ALICE.user,
    to: ['friend@remote.example'],
    message: testMessage(ALICE.user, 'friend@remote.example', subject),
  });

/** A plain inbound message for a local user on the MX port. */
const mxToAlice = (sys: TestSystem) =>
  smtpSend({
    port: sys.mxPort,
    from: 'x@sender.example',
    to: ['alice@example.test'],
    message: 'Subject: t\r\n\r\nx\r\n',
  });

describe('embedded mode (no NATS, spool next hop)', () => {
  it('writes accepted mail to the spool and decisions to the JSON-lines file', async () => {
    const sys = await startTestSystem({ dnsServer: dns.address });
    try {
      const r = await submit(sys, 'embedded');
      assert.equal(r.code, 250, r.response);
      const id = /queued as ([0-9A-F]+)/.exec(r.response)?.[1];
      const spool = join(sys.dir, 'state', 'spool', 'new');
      const files = await readdir(spool);
      assert.equal(files.length, 1);
      assert.ok(files[0]?.includes(`.${id}.eml`));
      const text = await readFile(join(spool, files[0] as string), 'utf8');
      assert.match(
        text,
        /^Return-Path: <alice@example\.test>\r\nX-Smtpguard-Envelope-To: <friend@remote\.example>\r\nAuthentication-Results: mx\.example\.test; auth=pass smtp\.auth=alice@example\.test\r\nReceived: from /,
      );
      assert.ok(
        text.endsWith(
          '\r\n\r\nHello from the smtpguard end-to-end tests.\r\n.leading dot line stays intact\r\n' +
            'Ümlauts and long lines stay byte for byte.\r\n',
        ),
        'the body arrives unchanged (dot-unstuffed)',
      );
      assert.deepEqual(await readdir(join(sys.dir, 'state', 'spool', 'tmp')), []);
      const lines = await waitFor('queue.accepted in the decisions file', async () => {
        const l = (await readFile(join(sys.dir, 'state', 'decisions.jsonl'), 'utf8'))
          .trim()
          .split('\n')
          .map((x) => JSON.parse(x));
        return l.some((d) => d.reasonCode === 'queue.accepted') ? l : undefined;
      });
      const accepted = lines.find((d) => d.reasonCode === 'queue.accepted');
      assert.equal(accepted.subject, 'smtpguard.decision.v1.smtp-edge.queue');
      assert.equal(accepted.messageId, id);
      assert.equal(accepted.outcome, 'OUTCOME_PASS');
    } finally {
      await sys.stop();
    }
  });
});

describe('bad config', () => {
  it('a service exits 1 naming the key and the problem', async () => {
    const { config } = await buildConfig({ dnsServer: dns.address });
    config.edge.listeners.mx.port = 'twenty-five';
    config.greylist.delaySecond = 5;
    const { configPath } = await writeConfig(config);
    const r = spawnSync(node, [join(root, 'services/smtp-edge/dist/main.js'), '--config', configPath], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^smtp-edge: invalid config .*smtpguard\.yaml:\n/);
    assert.match(r.stderr, /- edge\.listeners\.mx\.port: Invalid input: expected number, received string/);
    assert.match(r.stderr, /- greylist: unknown key "delaySecond"/);
  });

  it('the launcher refuses to start and says why', async () => {
    const { configPath } = await writeConfig({ edge: { trustedNetworks: 'not-a-list' } });
    const r = spawnSync(node, [join(root, 'packages/launcher/dist/main.js'), '--config', configPath], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /edge\.trustedNetworks: Invalid input: expected array/);
  });

  it('a bad trusted network entry is named', async () => {
    const { config } = await buildConfig({ dnsServer: dns.address });
    config.edge.trustedNetworks = ['10.0.0.0/8', 'mail.example.org/24'];
    const { configPath } = await writeConfig(config);
    const r = spawnSync(node, [join(root, 'services/smtp-edge/dist/main.js'), '--config', configPath], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /edge\.trustedNetworks: "mail\.example\.org\/24" is not an IP, CIDR, mask, wildcard, range, host name or domain/,
    );
  });

  it('a missing file is named', () => {
    const r = spawnSync(
      node,
      [join(root, 'services/auth/dist/main.js'), '--config', '/nonexistent/smtpguard.yaml'],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot read the file: ENOENT/);
  });
});

describe('backends unreachable', () => {
  it('auth down: senders and recipients get 451 4.3.0 (fail-closed), never a 5xx', async () => {
    const sys = await startTestSystem({ dnsServer: dns.address, services: ['smtp-edge'] });
    try {
      const m = await mxToAlice(sys);
      assert.equal(m.code, 451, m.response);
      assert.match(m.response, /^451 4\.3\.0 Sender <x@sender\.example> cannot be verified now/);
    } finally {
      await sys.stop();
    }
  });

  it('auth down, sender checks fail-open: recipients get 451 4.3.0 (fail-closed), never a 5xx', async () => {
    const sys = await startTestSystem({
      dnsServer: dns.address,
      services: ['smtp-edge'],
      override: (c) => {
        c.edge.checks.sender = { failureMode: 'fail-open' };
      },
    });
    try {
      const r = await mxToAlice(sys);
      assert.equal(r.code, 451, r.response);
      assert.match(r.response, /^451 4\.3\.0 Recipient <alice@example\.test> cannot be verified now/);
      const a = await smtpSend({
        port: sys.submissionPort,
        auth: ALICE,
        from: ALICE.user,
        to: ['f@remote.example'],
        message: 'x',
      });
      assert.equal(a.code, 454, a.response);
      assert.match(a.response, /^454 4\.7\.0 Temporary authentication failure/);
      const line = sys.system.logs.find((l) => l.reason === 'rcpt.lookup_unavailable');
      assert.ok(line, 'a log line with the reason code');
      assert.match(String(line.error), /^auth\.\w+: UNAVAILABLE/);
    } finally {
      await sys.stop();
    }
  });

  it('reputation down: the DNSBL check is fail-closed by default (451 4.4.3), never accepted unchecked', async () => {
    const sys = await startTestSystem({
      dnsServer: dns.address,
      services: ['auth', 'greylist', 'smtp-edge'],
    });
    try {
      const r = await mxToAlice(sys);
      assert.equal(r.code, 451, r.response);
      assert.match(r.response, /^451 4\.4\.3 Sender reputation could not be checked/);
      const line = await waitFor('dnsbl.error refusal', () =>
        sys.system.logs.find((l) => l.reason === 'dnsbl.error' && l.check === 'dnsbl'),
      );
      assert.equal(line.outcome, 'error');
    } finally {
      await sys.stop();
    }
  });

  it('greylist and reputation down, both fail-open: accepts and records the errors', async () => {
    const sys = await startTestSystem({
      dnsServer: dns.address,
      services: ['auth', 'smtp-edge'],
      override: (c) => {
        c.edge.checks.dnsbl = { failureMode: 'fail-open' };
      },
    });
    try {
      const r = await mxToAlice(sys);
      assert.equal(r.code, 250, r.response);
      const grey = await waitFor('greylist.unavailable log', () =>
        sys.system.logs.find((l) => l.reason === 'greylist.unavailable'),
      );
      assert.equal(grey.outcome, 'error');
      assert.equal(grey.failure_mode, 'fail-open');
      await waitFor('dnsbl.error log', () => sys.system.logs.find((l) => l.reason === 'dnsbl.error'));
    } finally {
      await sys.stop();
    }
  });

  it('greylist down with failureMode fail-closed: 451 4.3.0', async () => {
    const sys = await startTestSystem({
      dnsServer: dns.address,
      services: ['auth', 'reputation', 'smtp-edge'],
      override: (c) => {
        c.edge.checks.greylist = { failureMode: 'fail-closed' };
      },
    });
    try {
      const r = await mxToAlice(sys);
      assert.equal(r.code, 451, r.response);
      assert.match(r.response, /^451 4\.3\.0 Temporary server error/);
    } finally {
      await sys.stop();
    }
  });
});

describe('NATS unreachable', () => {
  it('onUnavailable=buffer: serves mail, logs the outage, publishes the buffered decisions once NATS is up', async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    const sys = await startTestSystem({ dnsServer: dns.address, natsUrl: url });
    let nats: Awaited<ReturnType<typeof startNats>> | undefined;
    let tap: DecisionTap | undefined;
    try {
      const outage = sys.system.logs.find(
        (l) => l.service === 'smtp-edge' && /NATS unreachable/.test(String(l.msg)),
      );
      assert.ok(outage, 'the edge logs that NATS is unreachable');
      assert.match(String(outage.err), new RegExp(`NATS unreachable at ${url}`));
      const r = await submit(sys, 'nats-down');
      assert.equal(r.code, 250, r.response);
      nats = await startNats(port);
      // Read the stream from the start: the buffered decisions arrive once the publisher reconnects.
      tap = await DecisionTap.open(nats.url);
      const { jetstream } = await import('@nats-io/jetstream');
      const { connect } = await import('@nats-io/transport-node');
      const nc = await connect({ servers: nats.url });
      try {
        const js = jetstream(nc);
        const found = await waitFor(
          'buffered queue.accepted in the stream',
          async () => {
            try {
              const c = await js.consumers.get('SMTPGUARD_DECISIONS');
              const batch = await c.fetch({ max_messages: 500, expires: 1000 });
              for await (const m of batch) {
                const { events } = await import('@smtpguard/contracts');
                const d = events.Decision.decode(m.data);
                if (d.reasonCode === 'queue.accepted') return d;
              }
            } catch {
              return undefined;
            }
            return undefined;
          },
          15_000,
        );
        assert.equal(found.session?.authenticatedUser, ALICE.user);
      } finally {
        await nc.close();
      }
    } finally {
      await sys.stop();
      await tap?.close();
      await nats?.stop();
    }
  });

  it('decisions made while NATS is away are kept in the outbox across a restart and published later', async () => {
    const port = await freePort();
    const sys = await startTestSystem({ dnsServer: dns.address, natsUrl: `nats://127.0.0.1:${port}` });
    let nats: Awaited<ReturnType<typeof startNats>> | undefined;
    let edge: Awaited<ReturnType<typeof startService>> | undefined;
    try {
      const r = await submit(sys, 'outbox-restart');
      assert.equal(r.code, 250, r.response);
      // SIGTERM while NATS is still away: nothing is lost, the decisions wait on disk.
      await sys.stop();
      const outbox = join(sys.dir, 'state', 'decision-outbox', 'smtp-edge-e2e.jsonl');
      const kept = (await readFile(outbox, 'utf8')).trim().split('\n').length;
      assert.ok(kept >= 3, `the edge's outbox holds its decisions (${kept})`);
      assert.ok(
        sys.system.logs.some(
          (l) => l.service === 'smtp-edge' && l.msg === 'decisions at shutdown' && Number(l.outbox) >= 3,
        ),
        'the edge says at shutdown how many decisions wait in its outbox',
      );
      nats = await startNats(port);
      edge = await startService('smtp-edge', { configPath: sys.configPath }, []);
      const { jetstream } = await import('@nats-io/jetstream');
      const { connect } = await import('@nats-io/transport-node');
      const { events } = await import('@smtpguard/contracts');
      const nc = await connect({ servers: nats.url });
      try {
        const js = jetstream(nc);
        const found = await waitFor(
          'the decision of before the restart in the stream',
          async () => {
            try {
              const c = await js.consumers.get('SMTPGUARD_DECISIONS');
              const batch = await c.fetch({ max_messages: 500, expires: 1000 });
              for await (const m of batch) {
                const d = events.Decision.decode(m.data);
                if (d.reasonCode === 'queue.accepted' && d.session?.authenticatedUser === ALICE.user)
                  return d;
              }
            } catch {
              return undefined;
            }
            return undefined;
          },
          15_000,
        );
        assert.equal(found.service, 'smtp-edge');
      } finally {
        await nc.close();
      }
      // Everything in the journal acknowledged: its saved acknowledged point is its length (the file itself
      // starts over only past 1 MiB).
      await waitFor('the outbox to be all acknowledged', async () => {
        const journal = await readFile(outbox).catch(() => Buffer.alloc(0));
        const acked = Number(await readFile(`${outbox}.acked`, 'utf8').catch(() => '0'));
        return journal.length === acked ? true : undefined;
      });
    } finally {
      if (edge && edge.child.exitCode === null) {
        edge.child.kill('SIGTERM');
        await edge.exited;
      }
      await nats?.stop();
    }
  });

  it('onUnavailable=exit: the service exits 1 with the reason', async () => {
    const { config } = await buildConfig({
      dnsServer: dns.address,
      natsUrl: `nats://127.0.0.1:${await freePort()}`,
    });
    config.nats.onUnavailable = 'exit';
    const { configPath } = await writeConfig(config);
    await assert.rejects(
      startSystem({ configPath, services: ['greylist'] }),
      /greylist exited with code 1 before it started: greylist: NATS unreachable at nats:\/\/127\.0\.0\.1:\d+/,
    );
  });
});
