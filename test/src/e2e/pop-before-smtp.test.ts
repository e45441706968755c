// POP-before-SMTP with the real parts: a real Dovecot (POP3) configured to call the auth service's auth policy
// endpoint, a real nats-server (login events on the NATS subject, decisions), and raw SMTP sessions. A POP3 login
// from an IP lets that IP send as the account and relay; another IP, another account's sender, or the same IP
// after the window cannot. Failed POP3 logins count toward the lockout, which Dovecot's policy query then enforces.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  type CaptureServer,
  freePort,
  type NatsServer,
  startCaptureServer,
  startNats,
  waitFor,
} from '@smtpguard/testing';
import { DecisionTap } from '../harness/decisions.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { type Dovecot, pop3Login, startDovecot } from '../harness/dovecot.js';
import { RawSmtp } from '../harness/raw-smtp.js';
import { unref } from '../harness/reference.js';
import { ALICE, startTestSystem, type TestSystem } from '../harness/system.js';

const WINDOW_SECONDS = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const UNAUTHORIZED =
  '550 5.7.1 Sender <alice@example.test> is in a local domain: authenticate before sending as it';

let nats: NatsServer;
let dns: DnsServer;
let hop: CaptureServer;
let sys: TestSystem;
let dovecot: Dovecot;
let tap: DecisionTap;
let nc: NatsConnection;

before(async () => {
  nats = await startNats();
  dns = await startDnsServer({});
  hop = await startCaptureServer();
  const policyPort = await freePort();
  sys = await startTestSystem({
    natsUrl: nats.url,
    dnsServer: dns.address,
    nextHopPort: hop.port,
    override: (c) => {
      c.edge.checks.greylist = { enabled: false };
      c.reputation.dnsbl = { zones: [] };
      c.auth.domains[0].mailboxes.push({
        address: 'bob@example.test',
        passwordHash: c.auth.domains[0].mailboxes[0].passwordHash,
      });
      c.auth.lockout = { accountThreshold: 3 };
      c.auth.popBeforeSmtp = {
        enabled: true,
        windowSeconds: WINDOW_SECONDS,
        dovecotPolicyListen: `127.0.0.1:${policyPort}`,
      };
    },
  });
  tap = await DecisionTap.open(nats.url);
  nc = await connect({ servers: nats.url });
  dovecot = await startDovecot({
    users: { [ALICE.user]: ALICE.pass, 'bob@example.test': ALICE.pass },
    policyUrl: `http://127.0.0.1:${policyPort}/`,
  });
});

after(async () => {
  await dovecot?.stop();
  await nc?.close();
  await tap?.close();
  await sys?.stop();
  await hop?.close();
  await dns?.close();
  await nats?.stop();
});

async function mailFrom(ip: string, sender: string, rcpt?: string): Promise<string[]> {
  const { c } = await RawSmtp.open(sys.mxPort, ip);
  await c.cmd('EHLO client.example');
  const out = [await c.cmd(`MAIL FROM:<${sender}>`)];
  if (rcpt && out[0]?.startsWith('250 ')) out.push(await c.cmd(`RCPT TO:<${rcpt}>`));
  await c.quit();
  // The catalog wording, without the reference each refusal ends with.
  return out.map(unref);
}

const decided = (ip: string, reason: string) =>
  tap.find((d) => d.reasonCode === reason && d.session?.clientIp === ip, `${reason} for ${ip}`);

/** Waits until `ip` may no longer send as alice; returns how long after `since` that was. */
async function expiry(ip: string, since: number): Promise<number> {
  await waitFor(
    'the POP-before-SMTP entry to expire',
    async () => {
      if ((await mailFrom(ip, ALICE.user))[0] === UNAUTHORIZED) return true;
      await sleep(250);
      return undefined;
    },
    (WINDOW_SECONDS + 5) * 1000,
  );
  return Date.now() - since;
}

describe('POP-before-SMTP through Dovecot’s auth policy requests', () => {
  it('a POP3 login lets that IP send as the account and relay, for the window only', async () => {
    const ip = '127.0.11.1';
    assert.deepEqual(await mailFrom(ip, ALICE.user), [UNAUTHORIZED], 'no entry before the login');
    assert.match(await pop3Login(dovecot.pop3Port, ip, ALICE.user, ALICE.pass), /^\+OK/);
    const loggedIn = Date.now();
    const [mail, rcpt] = await waitFor('the login to be reported', async () => {
      const r = await mailFrom(ip, ALICE.user, 'friend@remote.example');
      return r[0]?.startsWith('250 ') ? r : undefined;
    });
    assert.match(mail ?? '', /^250 2\.1\.0 /);
    assert.equal(rcpt, '250 2.1.5 Recipient <friend@remote.example> OK');
    const pop = await decided(ip, 'pop.authorized');
    assert.match(pop.decision.detail, /127\.0\.11\.1 logged in to the mailbox server as alice@example\.test/);
    await decided(ip, 'relay.granted.pop_before_smtp');
    // Only senders of that account (auth.popBeforeSmtp.sendersOfAccountOnly), and only from that IP.
    assert.match(
      (await mailFrom(ip, 'bob@example.test'))[0] ?? '',
      /^550 5\.7\.1 Sender <bob@example\.test> is in a local domain/,
    );
    const mismatch = await decided(ip, 'pop.sender_mismatch');
    assert.match(
      mismatch.decision.detail,
      /logged in as alice@example\.test, none of which may send as <bob@example\.test>/,
    );
    assert.deepEqual(await mailFrom('127.0.11.2', ALICE.user), [UNAUTHORIZED]);
    const took = await expiry(ip, loggedIn);
    assert.ok(took >= (WINDOW_SECONDS - 1) * 1000, `expired after ${took} ms, window ${WINDOW_SECONDS} s`);
  });

  it('failed POP3 logins count toward the lockout, and Dovecot’s policy query enforces it', async () => {
    // From three addresses (Dovecot's own auth penalty slows repeated failures from one address down).
    for (let i = 0; i < 3; i++)
      assert.match(
        await pop3Login(dovecot.pop3Port, `127.0.11.3${i}`, 'bob@example.test', `wrong-${i}`),
        /^-ERR/,
      );
    // Locked: the right password is refused by Dovecot (the policy answered "reject") and by SMTP AUTH.
    const refused = await waitFor('the failures to be reported', async () => {
      const r = await pop3Login(dovecot.pop3Port, '127.0.11.39', 'bob@example.test', ALICE.pass);
      return r.startsWith('-ERR') ? r : undefined;
    });
    assert.match(refused, /^-ERR/);
    const { c } = await RawSmtp.open(sys.mxPort, '127.0.11.4');
    await c.cmd('EHLO client.example');
    const auth = await c.cmd(
      `AUTH PLAIN ${Buffer.from(`\0bob@example.test\0${ALICE.pass}`).toString('base64')}`,
    );
    assert.equal(
      unref(auth),
      '504 5.7.1 Access to this user account has been denied by the mail administrator',
    );
    await c.quit();
    const d = await decided('127.0.11.4', 'auth.locked_out');
    assert.match(d.decision.detail, /locked after 3 failed logins/);
  });
});

describe('POP-before-SMTP through the NATS login subject', () => {
  it('a login event from another mailbox server lets that IP relay, for the window only', async () => {
    const ip = '127.0.11.5';
    assert.deepEqual(await mailFrom(ip, ALICE.user), [UNAUTHORIZED]);
    const reply = await nc.request(
      'smtpguard.login.v1.imap',
      JSON.stringify({ account: 'Alice@Example.test', clientIp: ip, protocol: 'imap' }),
      { timeout: 5000 },
    );
    const answer = reply.json<{ recorded: boolean; expiresAt: number }>();
    assert.equal(answer.recorded, true);
    const since = Date.now();
    assert.ok(
      Math.abs(answer.expiresAt - (since + WINDOW_SECONDS * 1000)) < 2000,
      'expires after the window',
    );
    assert.deepEqual(await mailFrom(ip, ALICE.user, 'friend@remote.example'), [
      `250 2.1.0 Sender <${ALICE.user}> OK`,
      '250 2.1.5 Recipient <friend@remote.example> OK',
    ]);
    await decided(ip, 'relay.granted.pop_before_smtp');
    const bad = await nc.request('smtpguard.login.v1.imap', JSON.stringify({ account: 'alice' }), {
      timeout: 5000,
    });
    assert.match(bad.json<{ error: string }>().error, /account and clientIp are required/);
    await expiry(ip, since);
  });
});
