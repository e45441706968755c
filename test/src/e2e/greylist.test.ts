// Greylisting end to end through smtp-edge with real SMTP clients: sender IP pools keyed on the SPF
// domain, whitelists (admin CLI, host name by FCrDNS, DNSWL), and the admin CLI against the service.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@smtpguard/testing';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { smtpSend } from '../harness/smtp-client.js';
import { startTestSystem, type TestSystem, testMessage } from '../harness/system.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let dns: DnsServer;
let sys: TestSystem;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const send = (localAddress: string, from: string, to = 'alice@example.test') =>
  smtpSend({
    port: sys.mxPort,
    localAddress,
    from,
    to: [to],
    message: testMessage(from, to, `grey-${localAddress}`),
  });

const cli = (...args: string[]) =>
  spawnSync(
    process.execPath,
    [join(root, 'packages/cli/dist/main.js'), ...args, '--config', sys.configPath],
    {
      encoding: 'utf8',
    },
  );

/** The greylist decision of the edge for a client address, from the edge's log lines. */
const edgeGreylist = (ip: string) =>
  waitFor(`greylist decision for ${ip}`, () =>
    [...sys.system.logs]
      .reverse()
      .find((l) => l.service === 'smtp-edge' && l.check === 'greylist' && l.client_ip === ip),
  );

before(async () => {
  dns = await startDnsServer({
    // A sender whose SPF authorizes the whole loopback pool (like a provider's IP pool).
    'pool.example': { TXT: ['v=spf1 ip4:127.0.0.0/8 -all'] },
    // FCrDNS: 127.0.0.8 <-> mx1.friend.test
    '8.0.0.127.in-addr.arpa': { PTR: ['mx1.friend.test'] },
    'mx1.friend.test': { A: ['127.0.0.8'] },
    // A PTR that does not resolve back: not verified, so the host-name rule must not match.
    '10.0.0.127.in-addr.arpa': { PTR: ['mx2.friend.test'] },
    'mx2.friend.test': { A: ['192.0.2.1'] },
    // DNSWL listing of 127.0.0.9
    // RFC 5782 test point: a list without it fails the health check and is not asked.
    '2.0.0.127.dnswl.test': { A: ['127.0.10.1'] },
    '9.0.0.127.dnswl.test': { A: ['127.0.10.1'] },
  });
  sys = await startTestSystem({
    dnsServer: dns.address,
    greylistDelaySeconds: 2,
    override: (c) => {
      c.greylist.ipv4Prefix = 32; // every loopback address is its own client
      c.greylist.whitelistClients = ['friend.test'];
      c.reputation.dnswl = { zones: [{ zone: 'dnswl.test' }] };
    },
  });
});

after(async () => {
  await sys?.stop();
  await dns?.close();
});

describe('greylisting through the edge', () => {
  it('keys a sender pool on its SPF domain: the retry from another IP of the pool passes', async () => {
    const first = await send('127.0.0.5', 'news@pool.example');
    assert.equal(first.code, 451, first.response);
    assert.match(
      first.response,
      /^451 4\.7\.1 Greylisted: this server employs greylisting, please retry in 2 seconds/,
    );
    const spf = await waitFor('spf decision', () =>
      sys.system.logs.find((l) => l.reason === 'spf.pass' && l.client_ip === '127.0.0.5'),
    );
    assert.equal(spf.domain, 'pool.example');
    assert.equal(
      (await edgeGreylist('127.0.0.5')).triplet,
      'spf:pool.example|news@pool.example|alice@example.test',
    );
    await sleep(2100);
    const retry = await send('127.0.0.6', 'news@pool.example');
    assert.equal(retry.code, 250, retry.response);
    assert.equal((await edgeGreylist('127.0.0.6')).reason, 'greylist.passed');
    // Control: without SPF the same two addresses are two clients.
    assert.equal((await send('127.0.0.5', 'someone@nospf.example')).code, 451);
    await sleep(2100);
    const other = await send('127.0.0.6', 'someone@nospf.example');
    assert.equal(other.code, 451, other.response);
  });

  it('never greylists a client whitelisted with the admin CLI, and lists and removes it', async () => {
    const add = cli('greylist', 'whitelist', 'add', 'client', '127.0.0.7', 'partner relay');
    assert.equal(add.status, 0, add.stderr);
    assert.equal(add.stdout.trim(), 'whitelisted client 127.0.0.7');
    const list = cli('greylist', 'whitelist');
    assert.match(list.stdout, /^client\t127\.0\.0\.7\t\d{4}-\d\d-\d\dT[\d:]+Z\tpartner relay$/m);
    for (let i = 0; i < 3; i++) {
      const r = await send('127.0.0.7', `sender${i}@elsewhere.example`);
      assert.equal(r.code, 250, r.response);
    }
    const d = await edgeGreylist('127.0.0.7');
    assert.equal(d.reason, 'greylist.whitelisted');
    const bad = cli('greylist', 'whitelist', 'add', 'client', 'not a rule');
    assert.equal(bad.status, 1);
    assert.match(
      bad.stderr,
      /INVALID_ARGUMENT: "not a rule" is not an IP, CIDR, mask, wildcard, range, host name or domain/,
    );
    const rm = cli('greylist', 'whitelist', 'remove', 'client', '127.0.0.7');
    assert.equal(rm.status, 0, rm.stderr);
    // The replica that took the call drops its cached whitelist at once (other replicas within 5 s).
    assert.equal((await send('127.0.0.7', 'late@elsewhere.example')).code, 451);
  });

  it('whitelists by host name only when reverse DNS is forward-confirmed', async () => {
    const ok = await send('127.0.0.8', 'a@elsewhere.example');
    assert.equal(ok.code, 250, ok.response);
    const d = await edgeGreylist('127.0.0.8');
    assert.equal(d.reason, 'greylist.whitelisted');
    const forged = await send('127.0.0.10', 'a@elsewhere.example');
    assert.equal(forged.code, 451, 'a PTR that does not resolve back is not trusted');
  });

  it('lets DNSWL-listed clients skip greylisting', async () => {
    const r = await send('127.0.0.9', 'a@elsewhere.example');
    assert.equal(r.code, 250, r.response);
    assert.equal((await edgeGreylist('127.0.0.9')).reason, 'greylist.whitelisted');
  });

  it('the admin CLI lists, counts and deletes triplets', async () => {
    const list = cli('greylist', 'list', 'nospf.example');
    assert.equal(list.status, 0, list.stderr);
    const rows = list.stdout.trim().split('\n').slice(1);
    assert.equal(rows.length, 2);
    assert.ok(
      rows.every((r) => /\t(127\.0\.0\.[56]\/32)\|someone@nospf\.example\|alice@example\.test$/.test(r)),
    );
    const stats = cli('greylist', 'stats');
    assert.match(stats.stdout, /^triplets: \d+$/m);
    const key = rows[0]?.split('\t').at(-1) ?? '';
    const del = cli('greylist', 'delete', key);
    assert.equal(del.stdout.trim(), `deleted ${key}`);
    assert.equal(cli('greylist', 'delete', key).status, 1);
    assert.equal(cli('greylist', 'list', 'nospf.example').stdout.trim().split('\n').length, 2);
  });
});
