// "Why was this refused?" end to end: a message is refused, the sender quotes the reference at the end of the
// reply, and `smtpguard why REFERENCE` finds the session's decisions, from the decisions file (embedded mode)
// and from a real JetStream stream (NATS), with the reply sent, what happened and what to change;
// `smtpguard log` lists the refusals of a window. The CLI runs as a process, as an administrator runs it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type NatsServer, startNats, waitFor } from '@smtpguard/testing';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { referenceOf, unref } from '../harness/reference.js';
import { smtpSend } from '../harness/smtp-client.js';
import { ALICE, startTestSystem, type TestSystem, testMessage } from '../harness/system.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

interface WhyJson {
  session: string;
  reference: string;
  decisions: Array<{ reason: string; reply: string; happened: string; resolve: string; client_ip: string }>;
}

function cli(sys: TestSystem, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(
    process.execPath,
    [join(root, 'packages/cli/dist/main.js'), ...args, '--config', sys.configPath],
    { encoding: 'utf8', timeout: 20_000 },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dns: DnsServer;
let nats: NatsServer;

before(async () => {
  dns = await startDnsServer({ '2.0.0.127.dnsbl.test': { A: ['127.0.0.2'] } });
  nats = await startNats();
});

after(async () => {
  await dns?.close();
  await nats?.stop();
});

/** A relay refusal and a greylisting, from their own client addresses; returns the replies. */
async function refuse(sys: TestSystem, prefix: string) {
  const message = testMessage('someone@sender.example', 'x@remote.example', 'why');
  const relay = await smtpSend({
    port: sys.mxPort,
    localAddress: `${prefix}.1`,
    from: 'someone@sender.example',
    to: ['x@remote.example'],
    message,
  });
  assert.equal(
    unref(relay.response),
    '550 5.7.1 Relaying denied: <x@remote.example> is not local and you are not authorized to relay',
  );
  const grey = await smtpSend({
    port: sys.mxPort,
    localAddress: `${prefix}.2`,
    from: 'someone@sender.example',
    to: [ALICE.user],
    message,
  });
  assert.equal(grey.code, 451, grey.response);
  return { relay: relay.response, grey: grey.response };
}

function checkWhy(sys: TestSystem, relayReply: string, clientIp: string): void {
  const ref = referenceOf(relayReply);
  const text = cli(sys, 'why', ref);
  assert.equal(text.status, 0, text.stderr);
  assert.match(
    text.stdout,
    new RegExp(`session \\S+${ref} \\(ref ${ref}\\) from ${clientIp.replace(/\./g, '\\.')}`),
  );
  assert.match(text.stdout, /rcpt\/relay: fail relay\.denied/);
  assert.ok(text.stdout.includes(`reply:    ${relayReply}`), text.stdout);
  assert.match(text.stdout, /happened: .*x@remote\.example/);
  assert.match(text.stdout, /resolve: {2}\S/);
  const json = cli(sys, 'why', ref, '--json');
  assert.equal(json.status, 0, json.stderr);
  const sessions = JSON.parse(json.stdout) as WhyJson[];
  assert.equal(sessions.length, 1);
  assert.equal(sessions[0]?.reference, ref);
  const d = sessions[0]?.decisions.find((x) => x.reason === 'relay.denied');
  assert.ok(d, json.stdout);
  assert.equal(d.reply, relayReply);
  assert.equal(d.client_ip, clientIp);
  assert.ok(d.resolve.length > 20 && !d.resolve.includes('(unknown)'), d.resolve);
  // The whole reply as a sender pastes it finds the same session.
  assert.equal(JSON.parse(cli(sys, 'why', relayReply, '--json').stdout)[0].session, sessions[0]?.session);
  // Nothing matches: exit 1.
  assert.equal(cli(sys, 'why', 'zzzzzzzz').status, 1);
}

function checkGreylistAndLog(sys: TestSystem, prefix: string): void {
  // By client IP; greylist.new states the seconds (the service's own decision and the edge's).
  const grey = cli(sys, 'why', `${prefix}.2`, '--json');
  assert.equal(grey.status, 0, grey.stderr);
  const decisions = (JSON.parse(grey.stdout) as WhyJson[]).flatMap((s) => s.decisions);
  const greylisted = decisions.filter((x) => x.reason === 'greylist.new');
  assert.ok(greylisted.length >= 1, grey.stdout);
  for (const g of greylisted) assert.match(g.happened, /may pass in 300 seconds/);
  // The log of the last hour, filtered.
  const log = cli(sys, 'log', '--since', '1h', '--reason', 'relay', '--json');
  assert.equal(log.status, 0, log.stderr);
  const rows = JSON.parse(log.stdout) as Array<{ reason: string; client_ip: string; reference: string }>;
  assert.deepEqual(
    rows.map((r) => [r.reason, r.client_ip]),
    [['relay.denied', `${prefix}.1`]],
  );
  const byClient = cli(sys, 'log', '--client', `${prefix}.2`);
  assert.equal(byClient.status, 0);
  assert.match(
    byClient.stdout,
    new RegExp(
      `\\t${prefix.replace(/\./g, '\\.')}\\.2\\tsomeone@sender\\.example\\t${ALICE.user.replace('.', '\\.')}\\t451\\tgreylist\\.new`,
    ),
  );
  assert.equal(cli(sys, 'log', '--since', '2h', '--until', '1h').stdout, '', 'nothing an hour ago');
}

describe('smtpguard why and log, decisions file (embedded mode)', () => {
  let sys: TestSystem;
  let replies: { relay: string; grey: string };
  before(async () => {
    sys = await startTestSystem({ dnsServer: dns.address, greylistDelaySeconds: 300 });
    replies = await refuse(sys, '127.0.8');
    // The file is appended asynchronously.
    await waitFor('decision in the file', async () =>
      cli(sys, 'why', referenceOf(replies.relay)).status === 0 ? true : undefined,
    );
  });
  after(async () => sys?.stop());

  it('finds the refusal by the reference in the reply, with the reply, what happened and what to change', () =>
    checkWhy(sys, replies.relay, '127.0.8.1'));
  it('finds the greylisting by client IP, stating the seconds; log lists refusals by reason and client', () =>
    checkGreylistAndLog(sys, '127.0.8'));
});

describe('smtpguard why and log, JetStream stream (NATS)', () => {
  let sys: TestSystem;
  let replies: { relay: string; grey: string };
  before(async () => {
    sys = await startTestSystem({ dnsServer: dns.address, natsUrl: nats.url, greylistDelaySeconds: 300 });
    replies = await refuse(sys, '127.0.9');
    await waitFor(
      'decisions in the stream',
      async () => (cli(sys, 'why', `127.0.9.2`, '--json').stdout.includes('greylist.new') ? true : undefined),
      10_000,
    );
  });
  after(async () => sys?.stop());

  it('finds the refusal by the reference in the reply', () => checkWhy(sys, replies.relay, '127.0.9.1'));
  it('finds the greylisting by client IP; log reads the stream', () => checkGreylistAndLog(sys, '127.0.9'));
});
