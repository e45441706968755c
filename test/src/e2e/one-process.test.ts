// `pnpm start`'s default: the four services in the launcher's one process, the edge calling the others without
// gRPC. Real SMTP clients, a real DNS server, the spool as next hop, the `smtpguard` command against the gRPC
// ports the services still serve; every service's decisions in the one file.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '@smtpguard/testing';
import { readDecisions } from '../harness/decision-file.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { scrape, total } from '../harness/prometheus.js';
import { unref } from '../harness/reference.js';
import { smtpSend } from '../harness/smtp-client.js';
import { ALICE, buildConfig, testMessage, writeConfig } from '../harness/system.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let dns: DnsServer;
let dir: string;
let configPath: string;
let mxPort: number;
let submissionPort: number;
let launcher: ChildProcess;
let metricsPort: number;
let output = '';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  dns = await startDnsServer({ '2.0.0.127.dnsbl.test': { A: ['127.0.0.2'] } });
  const built = await buildConfig({ dnsServer: dns.address, greylistDelaySeconds: 1 });
  built.config.logLevel = 'info';
  built.config.greylist.ipv4Prefix = 32; // every loopback address is its own client
  ({ mxPort, submissionPort } = built);
  ({ dir, configPath } = await writeConfig(built.config));
  metricsPort = await freePort();
  launcher = spawn(process.execPath, [join(root, 'packages/launcher/dist/main.js'), '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      OTEL_METRICS_EXPORTER: 'prometheus',
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
    },
  });
  const collect = (d: Buffer) => {
    output += d.toString();
  };
  launcher.stdout?.on('data', collect);
  launcher.stderr?.on('data', collect);
  await waitFor('smtpguard is running', () => output.includes('smtpguard is running') || undefined, 30_000);
});

after(async () => {
  if (launcher && launcher.exitCode === null) launcher.kill('SIGKILL');
  await dns?.close();
});

const send = (localAddress: string, from: string, to = ALICE.user) =>
  smtpSend({
    port: mxPort,
    localAddress,
    from,
    to: [to],
    message: testMessage(from, to, `one-${localAddress}`),
  });

const cli = (...args: string[]) =>
  spawnSync(process.execPath, [join(root, 'packages/cli/dist/main.js'), ...args, '--config', configPath], {
    encoding: 'utf8',
  });

/** Pids of the processes whose parent is `pid`. */
async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e));
  }
  return out;
}

describe('one process (pnpm start)', () => {
  it("runs the four services in the launcher's own process, each logging as itself", async () => {
    assert.deepEqual(await childrenOf(launcher.pid as number), [], 'no child processes');
    assert.match(output, new RegExp(`processes +one \\(pid ${launcher.pid}\\)`));
    const started = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { service: string; msg: string })
      .filter((l) => l.msg === `${l.service} started`)
      .map((l) => l.service);
    assert.deepEqual(started, ['auth', 'reputation', 'greylist', 'smtp-edge']);
  });

  it('greylists a new triplet, then takes the retry into the spool; greylist and edge record their decisions', async () => {
    const first = await send('127.0.0.5', 'first@remote.example');
    assert.equal(first.code, 451, first.response);
    assert.match(unref(first.response), /^451 4\.7\.1 Greylisted/);
    await sleep(1100);
    const retry = await send('127.0.0.5', 'first@remote.example');
    assert.equal(retry.code, 250, retry.response);
    const id = /queued as ([0-9A-F]+)/.exec(retry.response)?.[1];
    assert.ok(id, retry.response);
    const files = await readdir(join(dir, 'state', 'spool', 'new'));
    const file = files.find((f) => f.includes(`.${id}.eml`));
    assert.ok(file, `spooled as ${id}: ${files.join(' ')}`);
    assert.match(
      await readFile(join(dir, 'state', 'spool', 'new', file), 'utf8'),
      /Subject: one-127\.0\.0\.5/,
    );
    const decisions = await waitFor('the decisions of both attempts', async () => {
      const all = (await readDecisions(dir)).filter((d) => d.session?.clientIp === '127.0.0.5');
      const want = [
        ['greylist', 'greylist.new'],
        ['greylist', 'greylist.passed'],
        ['smtp-edge', 'greylist.new'],
        ['smtp-edge', 'queue.accepted'],
      ];
      return want.every(([s, r]) => all.some((d) => d.service === s && d.reasonCode === r)) ? all : undefined;
    });
    // The greylist service's decision belongs to the edge's session, as over gRPC.
    const grey = decisions.find((d) => d.service === 'greylist' && d.reasonCode === 'greylist.passed');
    const accepted = decisions.find((d) => d.service === 'smtp-edge' && d.reasonCode === 'queue.accepted');
    assert.equal(grey?.session?.sessionId, accepted?.session?.sessionId);
    // And its trace: the in-process call runs in the edge's trace context.
    assert.ok(accepted?.traceId, 'the edge decision has a trace id');
    assert.equal(grey?.traceId, accepted?.traceId);
  });

  it('asks auth for the recipient and reputation for the client, in the same process', async () => {
    const unknown = await send('127.0.0.6', 'x@remote.example', 'nobody@example.test');
    assert.equal(unknown.code, 550, unknown.response);
    assert.match(unref(unknown.response), /^550 5\.1\.1 /);
    const listed = await send('127.0.0.2', 'x@remote.example');
    assert.equal(listed.code, 554, listed.response);
    assert.match(listed.response, /dnsbl\.test/);
    const ok = await smtpSend({
      port: submissionPort,
      auth: ALICE,
      from: ALICE.user,
      to: ['friend@remote.example'],
      message: testMessage(ALICE.user, 'friend@remote.example', 'one-submission'),
    });
    assert.equal(ok.code, 250, ok.response);
    const wrong = await smtpSend({
      port: submissionPort,
      auth: { user: ALICE.user, pass: 'wrong password' },
      from: ALICE.user,
      to: ['friend@remote.example'],
      message: testMessage(ALICE.user, 'friend@remote.example', 'one-wrong'),
    });
    assert.equal(wrong.code, 535, wrong.response);
  });

  it('still serves gRPC: the smtpguard command lists triplets, and a whitelisted client passes at once', async () => {
    const list = cli('greylist', 'list', 'remote.example');
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /\t1\t127\.0\.0\.5\/32\|first@remote\.example\|alice@example\.test$/m);
    const add = cli('greylist', 'whitelist', 'add', 'client', '127.0.0.7', 'partner');
    assert.equal(add.status, 0, add.stderr);
    const r = await send('127.0.0.7', 'new@partner.example');
    assert.equal(r.code, 250, r.response);
  });

  it("serves every service's metrics on the one endpoint", async () => {
    const samples = await scrape(metricsPort);
    const decisions = (labels: Record<string, string>) => total(samples, 'smtpguard_decisions_total', labels);
    assert.ok(decisions({ service: 'greylist', reason: 'greylist.new' }) >= 1, 'greylist');
    assert.ok(decisions({ service: 'smtp-edge', reason: 'queue.accepted' }) >= 2, 'edge');
    assert.ok(decisions({ service: 'smtp-edge', reason: 'rcpt.unknown_user' }) >= 1, 'edge refusal');
    // The edge's calls to the services in its process are measured as calls, as over gRPC.
    assert.ok(
      total(samples, 'rpc_client_call_duration_count', {
        rpc_service: 'smtpguard.greylist.v1.GreylistService',
      }) >= 3,
      'greylist calls',
    );
  });

  it('SIGTERM stops the process with exit code 0', async () => {
    const exited = new Promise<number | null>((resolve) => launcher.once('exit', (code) => resolve(code)));
    launcher.kill('SIGTERM');
    const code = await Promise.race([
      exited,
      new Promise((resolve) => setTimeout(() => resolve('still running'), 20_000).unref()),
    ]);
    assert.equal(code, 0, output.slice(-2000));
  });
});
