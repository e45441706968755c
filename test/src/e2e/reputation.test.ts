// The reputation service end to end through the edge, with a real DNS server on 127.0.0.1 serving the test zones:
// DNS block and allow lists (scores, actions, per-list texts, error codes, RFC 5782 health checks of a list that
// answers everything and of one that times out), HELO and sender-domain checks, SPF actions with explanations and
// Received-SPF, URI lists on the decoded first text part, DKIM (signed by nodemailer) and DMARC with
// Authentication-Results. Raw SMTP over TCP, exact replies, a decision for each refusal; each test talks from its
// own loopback address.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type CapturedMessage, type CaptureServer, startCaptureServer, waitFor } from '@smtpguard/testing';
import { createTransport } from 'nodemailer';
import { type FileDecision, findDecision, readDecisions } from '../harness/decision-file.js';
import { type DnsServer, startDnsServer, type ZoneRecords } from '../harness/dns-server.js';
import { RawSmtp } from '../harness/raw-smtp.js';
import { unref, withoutRef } from '../harness/reference.js';
import { startTestSystem, type TestSystem } from '../harness/system.js';

let dns: DnsServer;
let hop: CaptureServer;
let sys: TestSystem;

const MAILENABLE_URL = 'Message rejected because it contains links to an IP address that is blacklisted';
const dkimKey = generateKeyPairSync('rsa', { modulusLength: 1024 });
const publicKey = dkimKey.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const privateKey = dkimKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

// The wildcard list answers everything until a test repairs it.
let wildBroken = true;
const listed = (a = '127.0.0.2'): ZoneRecords => ({ A: [a] });
const testPoint = (zone: string) => ({ [`2.0.0.127.${zone}`]: listed() });
const mx = (host: string, extra: ZoneRecords = {}): ZoneRecords => ({ MX: [`10 ${host}`], ...extra });
// Each client's HELO name: c127-0-0-N.clients.test resolves to 127.0.0.N.
const heloName = (ip: string) => `c${ip.replace(/\./g, '-')}.clients.test`;

before(async () => {
  dns = await startDnsServer(
    {
      // DNS block lists: each lists its test point and the clients of its test.
      ...testPoint('bl.test'),
      '50.0.0.127.bl.test': listed(),
      '57.0.0.127.bl.test': listed(),
      '58.0.0.127.bl.test': listed(),
      ...testPoint('defer.test'),
      '51.0.0.127.defer.test': listed(),
      ...testPoint('tag.test'),
      '52.0.0.127.tag.test': listed('127.0.0.3'),
      ...testPoint('custom.test'),
      '53.0.0.127.custom.test': listed(),
      ...testPoint('err.test'),
      '54.0.0.127.err.test': listed('127.255.255.254'),
      ...testPoint('half.test'),
      '55.0.0.127.half.test': listed(),
      '56.0.0.127.half.test': listed(),
      ...testPoint('half2.test'),
      '56.0.0.127.half2.test': listed(),
      ...testPoint('wl.test'),
      '57.0.0.127.wl.test': listed(),
      ...testPoint('slow.test'),
      '61.0.0.127.slow.test': listed(),
      // Sender domains.
      'sender.test': mx('mx.sender.test'),
      'amx.test': { A: ['192.0.2.1'] },
      'nomx.test': { TXT: ['v=spf1 -all'] },
      'nullmx.test': { MX: ['0 .'] },
      'spf-pass.test': mx('mx.spf-pass.test', { TXT: ['v=spf1 ip4:127.0.0.0/8 -all'] }),
      'spf-fail.test': mx('mx.spf-fail.test', {
        TXT: ['v=spf1 ip4:192.0.2.0/24 exp=why.spf-fail.test -all'],
      }),
      'why.spf-fail.test': { TXT: ['%{i} is not allowed to send mail for %{d}'] },
      'spf-soft.test': mx('mx.spf-soft.test', { TXT: ['v=spf1 ~all'] }),
      'spf-perm.test': mx('mx.spf-perm.test', { TXT: ['v=spf1 ip4:192.0.2.0/33 -all'] }),
      'spf-temp.test': mx('mx.spf-temp.test', { TXT: ['v=spf1 include:spf.broken.test -all'] }),
      // DKIM and DMARC.
      'dkim.test': mx('mx.dkim.test', { TXT: ['v=spf1 ?all'] }),
      's1._domainkey.dkim.test': { TXT: [`v=DKIM1; k=rsa; p=${publicKey}`] },
      '_dmarc.dkim.test': { TXT: ['v=DMARC1; p=reject'] },
      'quar.test': mx('mx.quar.test', { TXT: ['v=spf1 ?all'] }),
      '_dmarc.quar.test': { TXT: ['v=DMARC1; p=quarantine'] },
      // URI lists (domain lists: "test" listed, "invalid" not) and an IP list for links.
      'test.uri.test': listed(),
      'spammy.test.uri.test': listed(),
      'test.taguri.test': listed(),
      'tagme.test.taguri.test': listed(),
      ...testPoint('ipuri.test'),
      '9.9.9.198.ipuri.test': listed(),
      '7.100.51.198.ipuri.test': listed(),
      'bad-host.test': { A: ['198.51.100.7'] },
      'good-host.test': { A: ['198.51.100.8'] },
    },
    ['broken.test'],
    {
      silent: ['slow.test'],
      dynamic: (name) => {
        const client = /^c(127-0-0-\d+)\.clients\.test$/.exec(name);
        if (client) return { A: [(client[1] as string).replace(/-/g, '.')] };
        if (name.endsWith('.wild.test')) {
          if (wildBroken) return listed();
          return name === '2.0.0.127.wild.test' || name === '60.0.0.127.wild.test' ? listed() : undefined;
        }
        return undefined;
      },
    },
  );
  hop = await startCaptureServer();
  sys = await startTestSystem({
    dnsServer: dns.address,
    nextHopPort: hop.port,
    override: (c) => {
      c.edge.checks = {
        greylist: { enabled: false },
        heloHost: { enabled: true },
        senderDomain: { enabled: true },
        uribl: { maxLines: 20 },
      };
      const zone = (z: string, o: Record<string, unknown> = {}) => ({ zone: z, ...o });
      c.reputation.dns.timeoutMs = 500;
      c.reputation.listHealth = { intervalSeconds: 1 };
      c.reputation.exemptClients = ['127.0.0.58'];
      c.reputation.dnsbl = {
        threshold: 1,
        zones: [
          zone('bl.test'),
          zone('defer.test', { action: 'defer' }),
          zone('tag.test', { action: 'tag' }),
          zone('custom.test', { replyText: 'Blocked: {client_ip} is on the {zone} list', replyCode: 550 }),
          zone('err.test'),
          zone('half.test', { weight: 0.5 }),
          zone('half2.test', { weight: 0.5 }),
          zone('wild.test'),
          zone('slow.test'),
        ],
      };
      c.reputation.dnswl = { zones: [zone('wl.test')] };
      c.reputation.spf = { fail: 'reject', softfail: 'tag', permerror: 'reject' };
      c.reputation.dmarc = { reject: 'reject' };
      c.reputation.uribl = {
        zones: [zone('uri.test'), zone('taguri.test', { action: 'tag' })],
        ipZones: [zone('ipuri.test', { replyCode: 500, replyText: MAILENABLE_URL })],
      };
    },
  });
});

after(async () => {
  await sys?.stop();
  await hop?.close();
  await dns?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A session from `ip`, greeted and introduced with its own (resolving) host name. */
async function session(ip: string, helo = heloName(ip)): Promise<RawSmtp> {
  const { c, greeting } = await RawSmtp.open(sys.mxPort, ip);
  assert.equal(greeting, '220 mx.example.test ESMTP smtpguard ready');
  assert.match(await c.cmd(`EHLO ${helo}`), /^250-/);
  return c;
}

/** The refusal decision for `ip` with `reason`, checked against the reply the client got. */
async function refusal(ip: string, reason: string, reply: string): Promise<FileDecision> {
  const d = await findDecision(
    sys.dir,
    (x) => x.reasonCode === reason && x.session?.clientIp === ip && Boolean(x.reply),
    `${reason} for ${ip}`,
  );
  assert.equal(unref(`${d.reply?.code} ${d.reply?.enhancedCode} ${d.reply?.text}`), withoutRef(reply));
  return d;
}

const decision = (ip: string, reason: string, check?: string) =>
  findDecision(
    sys.dir,
    (x) => x.reasonCode === reason && x.session?.clientIp === ip && (!check || x.check === check),
    `${reason} for ${ip}`,
  );

let serial = 0;
function message(from: string, subject: string, body = 'Hello.', headers: string[] = []): string {
  serial += 1;
  return [
    `From: <${from}>`,
    'To: <alice@example.test>',
    `Subject: ${subject}`,
    `Message-ID: <rep${serial}.${Date.now()}@client.test>`,
    ...headers,
    '',
    body,
    '',
  ].join('\r\n');
}

/** Sends one message through an open session; returns the replies of MAIL, RCPT and the end of DATA. */
async function send(
  c: RawSmtp,
  from: string,
  raw: string,
  to = 'alice@example.test',
): Promise<{ mail: string; rcpt: string; data: string }> {
  const mail = await c.cmd(`MAIL FROM:<${from}>`);
  if (!mail.startsWith('250')) return { mail, rcpt: '', data: '' };
  const rcpt = await c.cmd(`RCPT TO:<${to}>`);
  if (!rcpt.startsWith('250')) {
    await c.cmd('RSET');
    return { mail, rcpt, data: '' };
  }
  assert.equal(unref(await c.cmd('DATA')), '354 End data with <CR><LF>.<CR><LF>');
  c.write(`${raw.replace(/\r\n\./g, '\r\n..')}\r\n.\r\n`);
  return { mail, rcpt, data: await c.read(10_000) };
}

const captured = (subject: string): Promise<CapturedMessage> =>
  waitFor(`message "${subject}" at the next hop`, async () =>
    hop.messages.find((m) => m.raw.toString().includes(`Subject: ${subject}\r\n`)),
  );

/** The header block of a captured message. */
const head = (m: CapturedMessage) => m.raw.toString().split('\r\n\r\n')[0] ?? '';

describe('DNS block and allow lists', () => {
  it('a list that answers everything and a list that times out refuse no one, are disabled, and come back when healthy', async () => {
    for (const ip of ['127.0.0.1', '127.0.0.3']) {
      const c = await session(ip);
      assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
      assert.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /, `${ip} is not refused`);
      await c.quit();
    }
    const clean = await decision('127.0.0.1', 'dnsbl.clean', 'client-reputation');
    assert.deepEqual(clean.attributes?.disabled_zones?.split(',').sort(), ['slow.test', 'wild.test']);
    const disabled = sys.system.logs.filter((l) => String(l.msg).includes('health check: disabled'));
    assert.deepEqual(disabled.map((l) => l.zone).sort(), ['slow.test', 'wild.test']);
    assert.match(String(disabled.find((l) => l.zone === 'wild.test')?.problem), /answers everything/);
    // Both lists are repaired: the periodic check (every second here) enables them again.
    wildBroken = false;
    dns.silent.delete('slow.test');
    await waitFor(
      'both lists enabled again',
      () => {
        const on = sys.system.logs.filter((l) => String(l.msg).includes('health check: enabled'));
        return on.length >= 2 ? on : undefined;
      },
      8000,
    );
    for (const [ip, zone] of [
      ['127.0.0.60', 'wild.test'],
      ['127.0.0.61', 'slow.test'],
    ] as const) {
      const c = await session(ip);
      assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
      const reply = `554 5.7.1 The IP address of the sender (${ip}) is listed on ${zone} and was refused`;
      assert.equal(unref(await c.cmd('RCPT TO:<alice@example.test>')), reply);
      await refusal(ip, 'dnsbl.listed', reply);
      await c.quit();
    }
    const c = await session('127.0.0.1');
    assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
    assert.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /, '127.0.0.1 is still not listed');
    await c.quit();
  });

  it('rejects a listed client 554 5.7.1 at RCPT, postmaster excepted', async () => {
    const ip = '127.0.0.50';
    const c = await session(ip);
    assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
    const reply = '554 5.7.1 The IP address of the sender (127.0.0.50) is listed on bl.test and was refused';
    assert.equal(unref(await c.cmd('RCPT TO:<alice@example.test>')), reply);
    assert.match(await c.cmd('RCPT TO:<postmaster@example.test>'), /^250 /);
    const d = await refusal(ip, 'dnsbl.listed', reply);
    assert.equal(d.phase, 'PHASE_RCPT');
    await decision(ip, 'dnsbl.exempt_recipient');
    await c.quit();
  });

  it('defers for a list whose action is defer (451 4.7.1, MailEnable)', async () => {
    const ip = '127.0.0.51';
    const c = await session(ip);
    assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
    const reply =
      '451 4.7.1 The IP address you are sending from (127.0.0.51) was reported as a source of spam on defer.test, please try again later';
    assert.equal(unref(await c.cmd('RCPT TO:<alice@example.test>')), reply);
    assert.equal((await refusal(ip, 'dnsbl.deferred', reply)).outcome, 'OUTCOME_DEFER');
    await c.quit();
  });

  it('accepts and tags for a list whose action is tag (MailEnable "Mark As Spam")', async () => {
    const ip = '127.0.0.52';
    const c = await session(ip);
    const r = await send(c, 'a@sender.test', message('a@sender.test', 'dnsbl-tag'));
    assert.match(r.data, /^250 /);
    assert.match(
      head(await captured('dnsbl-tag')),
      /\r\nX-Smtpguard-Tag: dnsbl; tag\.test \(127\.0\.0\.3\); score=1\/1\r\n/,
    );
    await decision(ip, 'dnsbl.tagged', 'dnsbl');
    await c.quit();
  });

  it("uses a list's own reply code and text (hMailServer's custom message)", async () => {
    const ip = '127.0.0.53';
    const c = await session(ip);
    assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
    const reply = '550 5.7.1 Blocked: 127.0.0.53 is on the custom.test list';
    assert.equal(unref(await c.cmd('RCPT TO:<alice@example.test>')), reply);
    await refusal(ip, 'dnsbl.listed', reply);
    await c.quit();
  });

  it('takes an error code (127.255.255.254, queried through a public resolver) as a failed query, not a listing', async () => {
    const ip = '127.0.0.54';
    const c = await session(ip);
    assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
    assert.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
    const d = await decision(ip, 'dnsbl.clean', 'client-reputation');
    assert.equal(d.attributes?.failed_zones, 'err.test');
    await c.quit();
  });

  it('scores lists postscreen-style: below the threshold accepted, at it refused; an allow list subtracts', async () => {
    for (const [ip, expect] of [
      ['127.0.0.55', /^250 /],
      ['127.0.0.56', /^554 5\.7\.1 .* is listed on half\.test and was refused \(ref [0-9a-v]{8}\)$/],
      ['127.0.0.57', /^250 /],
    ] as const) {
      const c = await session(ip);
      assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
      assert.match(await c.cmd('RCPT TO:<alice@example.test>'), expect, ip);
      await c.quit();
    }
    assert.equal((await decision('127.0.0.55', 'dnsbl.below_threshold')).attributes?.score, '0.5');
    assert.equal((await decision('127.0.0.56', 'dnsbl.listed', 'client-reputation')).attributes?.score, '1');
    assert.equal((await decision('127.0.0.57', 'dnsbl.below_threshold')).attributes?.score, '0');
  });

  it('exempts a client of reputation.exemptClients from the lists, without letting it relay', async () => {
    const ip = '127.0.0.58';
    const c = await session(ip);
    assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250 /);
    assert.match(await c.cmd('RCPT TO:<alice@example.test>'), /^250 /);
    assert.match(await c.cmd('RCPT TO:<someone@remote.example>'), /^550 5\.7\.1 /);
    assert.equal((await decision(ip, 'dnsbl.exempt')).attributes?.rule, '127.0.0.58');
    await decision(ip, 'relay.denied');
    await c.quit();
  });
});

describe('HELO and sender domain', () => {
  it('refuses a HELO name that does not exist or names another host (550 5.7.1, hMailServer)', async () => {
    const ip = '127.0.0.71';
    const { c } = await RawSmtp.open(sys.mxPort, ip);
    const missing =
      '550 5.7.1 The host name nonexistent-host.invalid given in HELO does not match your address 127.0.0.71';
    assert.equal(unref(await c.cmd('HELO nonexistent-host.invalid')), missing);
    const other = `550 5.7.1 The host name ${heloName('127.0.0.99')} given in EHLO does not match your address 127.0.0.71`;
    assert.equal(unref(await c.cmd(`EHLO ${heloName('127.0.0.99')}`)), other);
    const d = await refusal(ip, 'helo.host_mismatch', missing);
    assert.match(d.detail ?? '', /nonexistent-host\.invalid, which resolves to no address/);
    const second = await findDecision(
      sys.dir,
      (x) => x.reasonCode === 'helo.host_mismatch' && x.session?.clientIp === ip && x.id !== d.id,
      'the second mismatch',
    );
    assert.equal(
      unref(`${second.reply?.code} ${second.reply?.enhancedCode} ${second.reply?.text}`),
      withoutRef(other),
    );
    assert.match(second.detail ?? '', /resolves to 127\.0\.0\.99/);
    assert.match(await c.cmd(`EHLO ${heloName(ip)}`), /^250-/);
    await decision(ip, 'helo.host_match');
    await c.quit();
  });

  it('refuses a sender domain without MX (550 5.1.8), one that does not exist, a null MX (5.7.27); DNS errors 451', async () => {
    const ip = '127.0.0.72';
    const c = await session(ip);
    const cases: Array<[string, string, string]> = [
      ['x@nomx.test', 'sender.no_mx', '550 5.1.8 Sender domain nomx.test does not have any MX records'],
      ['x@nxdomain.test', 'sender.domain_not_found', '550 5.1.8 Sender domain nxdomain.test does not exist'],
      [
        'x@nullmx.test',
        'sender.null_mx',
        '550 5.7.27 Sender domain nullmx.test has a null MX and accepts no mail',
      ],
      [
        'x@dns.broken.test',
        'sender.domain_error',
        '451 4.4.3 Sender domain dns.broken.test could not be checked, please try again later',
      ],
    ];
    for (const [from, reason, reply] of cases) {
      assert.equal(unref(await c.cmd(`MAIL FROM:<${from}>`)), reply);
      await refusal(ip, reason, reply);
    }
    assert.match(await c.cmd('MAIL FROM:<x@amx.test>'), /^250 /, 'an address is an implicit MX');
    assert.equal(unref(await c.cmd('RSET')), '250 2.0.0 Reset OK');
    assert.match(await c.cmd('MAIL FROM:<>'), /^250 /, 'the null sender has no domain to check');
    await c.quit();
  });
});

describe('SPF', () => {
  it("refuses a fail 550 5.7.23 with the domain's explanation, a permerror 550 5.7.24, defers a temperror", async () => {
    const ip = '127.0.0.73';
    const c = await session(ip);
    const fail =
      '550 5.7.23 The IP address of the sender (127.0.0.73) does not match the SPF record of spf-fail.test: 127.0.0.73 is not allowed to send mail for spf-fail.test';
    assert.equal(unref(await c.cmd('MAIL FROM:<x@spf-fail.test>')), fail);
    await refusal(ip, 'spf.fail', fail);
    const perm = '550 5.7.24 The SPF record of spf-perm.test is invalid';
    assert.equal(unref(await c.cmd('MAIL FROM:<x@spf-perm.test>')), perm);
    await refusal(ip, 'spf.permerror', perm);
    const temp = '451 4.4.3 The SPF record of spf-temp.test could not be checked, please try again later';
    assert.equal(unref(await c.cmd('MAIL FROM:<x@spf-temp.test>')), temp);
    await refusal(ip, 'spf.temperror', temp);
    await c.quit();
  });

  it('adds Received-SPF to accepted messages, and tags a softfail', async () => {
    const ip = '127.0.0.74';
    const c = await session(ip);
    assert.match((await send(c, 'x@spf-pass.test', message('x@spf-pass.test', 'spf-pass'))).data, /^250 /);
    assert.match((await send(c, 'x@spf-soft.test', message('x@spf-soft.test', 'spf-soft'))).data, /^250 /);
    await c.quit();
    assert.match(
      head(await captured('spf-pass')),
      /^Received-SPF: pass \(mx\.example\.test: domain of x@spf-pass\.test designates 127\.0\.0\.74 as permitted sender\) client-ip=127\.0\.0\.74;/,
    );
    const soft = head(await captured('spf-soft'));
    assert.match(soft, /^Received-SPF: softfail /m);
    assert.match(soft, /\r\nX-Smtpguard-Tag: spf; softfail for spf-soft\.test\r\n/);
    await decision(ip, 'spf.softfail');
  });
});

describe('URI lists on the body', () => {
  const qp = (text: string) =>
    message('x@sender.test', 'uri-qp', text.replace(/=/g, '=3D').replace(/(.{70})/g, '$1=\r\n'), [
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
    ]);

  it('refuses a listed domain in quoted-printable text (554 5.7.1)', async () => {
    const ip = '127.0.0.75';
    const c = await session(ip);
    const r = await send(
      c,
      'x@sender.test',
      qp('Buy now at http://www.spammy.test/offer?id=12345&ref=abc today'),
    );
    const reply =
      '554 5.7.1 Message rejected because it contains links to www.spammy.test, which is listed on uri.test';
    assert.equal(unref(r.data), reply);
    const d = await refusal(ip, 'uribl.listed', reply);
    assert.equal(d.phase, 'PHASE_DATA');
    await c.quit();
  });

  it('refuses links to a listed IP literal and to a host whose address is listed in base64 HTML (500, MailEnable)', async () => {
    const ip = '127.0.0.76';
    const c = await session(ip);
    for (const link of ['http://198.9.9.9/x', 'https://bad-host.test/landing']) {
      const html = Buffer.from(`<html><body><p>Hi</p><a href="${link}">click</a></body></html>`).toString(
        'base64',
      );
      const raw = message('x@sender.test', `uri-html ${link}`, html, [
        'MIME-Version: 1.0',
        'Content-Type: text/html; charset=utf-8',
        'Content-Transfer-Encoding: base64',
      ]);
      const r = await send(c, 'x@sender.test', raw);
      assert.equal(unref(r.data), `500 5.7.1 ${MAILENABLE_URL}`, link);
    }
    await refusal(ip, 'uribl.listed', `500 5.7.1 ${MAILENABLE_URL}`);
    await c.quit();
  });

  it('tags a link on a tagging list, accepts clean links and a listed link beyond the scanned lines', async () => {
    const ip = '127.0.0.77';
    const c = await session(ip);
    assert.match(
      (await send(c, 'x@sender.test', message('x@sender.test', 'uri-tag', 'see http://tagme.test/'))).data,
      /^250 /,
    );
    const far = `${'line\r\n'.repeat(25)}http://www.spammy.test/`;
    assert.match((await send(c, 'x@sender.test', message('x@sender.test', 'uri-far', far))).data, /^250 /);
    assert.match(
      (await send(c, 'x@sender.test', message('x@sender.test', 'uri-clean', 'http://good-host.test/ ok')))
        .data,
      /^250 /,
    );
    await c.quit();
    assert.match(
      head(await captured('uri-tag')),
      /\r\nX-Smtpguard-Tag: uribl; tagme\.test listed on taguri\.test/,
    );
    await decision(ip, 'uribl.tagged');
    await captured('uri-far');
  });
});

describe('DKIM and DMARC', () => {
  async function signed(subject: string): Promise<string> {
    const t = createTransport({
      streamTransport: true,
      buffer: true,
      newline: 'windows',
      dkim: { domainName: 'dkim.test', keySelector: 's1', privateKey },
    });
    const info = await t.sendMail({
      from: 'news@dkim.test',
      to: 'alice@example.test',
      subject,
      text: 'Signed text of the message.\r\nSecond line.\r\n',
    });
    return (info.message as Buffer).toString();
  }

  it('verifies a signed message (dkim=pass, dmarc=pass) and refuses a tampered one under p=reject (550 5.7.1)', async () => {
    const ip = '127.0.0.78';
    const c = await session(ip);
    const good = await signed('dkim-good');
    assert.match((await send(c, 'news@dkim.test', good)).data, /^250 /);
    const tampered = (await signed('dkim-bad')).replace('Second line.', 'Second line, changed.');
    const reply = '550 5.7.1 Message rejected: it fails the DMARC policy of dkim.test';
    assert.equal(unref((await send(c, 'news@dkim.test', tampered)).data), reply);
    await refusal(ip, 'dmarc.reject', reply);
    await c.quit();
    const ar = head(await captured('dkim-good'));
    assert.match(ar, /^Authentication-Results: mx\.example\.test;/m);
    assert.match(ar, /dkim=pass .*header\.d=dkim\.test/);
    assert.match(ar, /dmarc=pass /);
    assert.equal((await decision(ip, 'dmarc.pass')).attributes?.dkim, 'pass');
  });

  it('tags a message failing a quarantine policy', async () => {
    const ip = '127.0.0.79';
    const c = await session(ip);
    assert.match((await send(c, 'x@quar.test', message('x@quar.test', 'dmarc-quarantine'))).data, /^250 /);
    await c.quit();
    const h = head(await captured('dmarc-quarantine'));
    assert.match(h, /dmarc=fail /);
    assert.match(h, /\r\nX-Smtpguard-Tag: dmarc; quar\.test fails DMARC \(p=quarantine\)\r\n/);
    await decision(ip, 'dmarc.quarantine');
  });

  it("removes Authentication-Results fields a client forged in this host's name (RFC 8601 5)", async () => {
    const ip = '127.0.0.81';
    const c = await session(ip);
    const raw = message('x@sender.test', 'forged-ar', 'Hello.', [
      'Authentication-Results: mx.example.test; dkim=pass header.d=bank.test; dmarc=pass',
      'Authentication-Results: relay.other.test; spf=pass smtp.mailfrom=sender.test',
    ]);
    assert.match((await send(c, 'x@sender.test', raw)).data, /^250 /);
    await c.quit();
    const h = head(await captured('forged-ar'));
    const ours = h.split('\r\n').filter((l) => l.startsWith('Authentication-Results: mx.example.test;'));
    assert.equal(ours.length, 1, h);
    assert.ok(!h.includes('header.d=bank.test'), 'the forged field is gone');
    assert.match(h, /\r\nAuthentication-Results: relay\.other\.test; spf=pass/);
  });

  it('adds Authentication-Results to every message the edge accepted', () => {
    assert.ok(hop.messages.length >= 6);
    for (const m of hop.messages) assert.match(head(m), /^Authentication-Results: mx\.example\.test;/m);
  });
});

describe('figures', () => {
  const pct = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
  };

  it('DNS queries per message with a warm cache, and the latency each check adds', async () => {
    const ip = '127.0.0.80';
    const runs = 30;
    const body = 'Links: http://good-host.test/a http://www.example-shop.test/b\r\n';
    let c = await session(ip);
    // Warm-up: the first message fills the cache.
    assert.match((await send(c, 'x@spf-pass.test', message('x@spf-pass.test', 'warm', body))).data, /^250 /);
    await c.quit();
    // The service logs its cache counters (at most once a second here) when they changed.
    const cacheStats = async () => {
      await sleep(1300);
      const line = sys.system.logs.filter((l) => l.msg === 'DNS cache').pop() as
        | { hits: number; misses: number; joined: number }
        | undefined;
      assert.ok(line, 'the DNS cache counters are logged');
      return line;
    };
    const statsBefore = await cacheStats();
    const before = dns.queries.length;
    const t0 = Date.now();
    let sent = 0;
    for (; sent < runs && Date.now() - t0 < 60_000; sent++) {
      c = await session(ip);
      assert.match(
        (await send(c, 'x@spf-pass.test', message('x@spf-pass.test', `fig${sent}`, body))).data,
        /^250 /,
      );
      await c.quit();
    }
    // Health checks of the lists run every second meanwhile; they bypass the cache and are not per message.
    const perMessage = dns.queries
      .slice(before)
      .filter((q) => !/^A (2|1)\.0\.0\.127\.|^A (test|invalid)\./.test(q)).length;
    const statsAfter = await cacheStats();
    const hits = statsAfter.hits + statsAfter.joined - statsBefore.hits - statsBefore.joined;
    const misses = statsAfter.misses - statsBefore.misses;
    const decisions = (await readDecisions(sys.dir)).filter((d) => d.session?.clientIp === ip) as Array<
      FileDecision & { latencyMs?: number }
    >;
    const checks = ['client-reputation', 'helo-host', 'sender-domain', 'spf', 'uribl', 'message-auth'];
    const lines = checks.map((name) => {
      const ms = decisions.filter((d) => d.check === name).map((d) => d.latencyMs ?? 0);
      assert.ok(ms.length >= sent, `${name}: ${ms.length} decisions`);
      return `${name}: p50 ${pct(ms, 50).toFixed(2)} ms, p99 ${pct(ms, 99).toFixed(2)} ms`;
    });
    console.log(
      `figures: ${sent} messages, ${(perMessage / sent).toFixed(2)} DNS queries per message with a warm cache; ` +
        `cache ${hits} hits, ${misses} misses (hit rate ${((100 * hits) / Math.max(1, hits + misses)).toFixed(1)}%)` +
        `\n  ${lines.join('\n  ')}`,
    );
    assert.ok(hits > 0, 'questions were answered from the cache');
    assert.ok(perMessage / sent < 1, 'a warm cache answers (almost) every question');
  });
});
