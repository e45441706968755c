// The edge's side of the reputation checks added with the reputation service's verdicts: HELO host, sender
// domain, URI lists (the decoded first text part) and DKIM/DMARC (the message streamed in pieces).
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { reputation } from '@smtpguard/contracts';
import type { MessageBody } from '../engine/check.js';
import {
  backendDown,
  checkContext,
  config,
  FakeBackends,
  facts,
  mailContext,
  newSession,
  only,
  runPhase,
} from '../fakes.test.js';
import { messageAuth } from './data/message-auth.js';
import { uribl } from './data/uribl.js';
import { heloHost } from './helo/helo-host.js';
import { senderDomain } from './mail/sender-domain.js';

const A = reputation.ListAction;
const verdict = (
  action: reputation.ListAction,
  reasonCode: string,
  extra: Partial<reputation.Verdict> = {},
) => reputation.Verdict.fromPartial({ action, reasonCode, ...extra });

describe('helo-host', () => {
  const helo = (
    arg: string,
    backends: FakeBackends,
    yaml = 'edge:\n  checks:\n    heloHost:\n      enabled: true\n',
  ) => checkContext('helo', { input: { command: 'EHLO', arg }, backends, cfg: config(yaml) });

  it('is opt-in', () => {
    assert.equal(heloHost.enabled?.(helo('x.test', new FakeBackends(), '')), false);
    assert.equal(heloHost.enabled?.(helo('x.test', new FakeBackends())), true);
  });

  it('refuses a mismatch 550 5.7.1 with the name and the command, and asks with the new HELO', async () => {
    const backends = new FakeBackends({
      checkHelo: () =>
        reputation.CheckHeloResponse.fromPartial({
          verdict: verdict(A.LIST_ACTION_REJECT, 'helo.host_mismatch', { vars: { addresses: 'no address' } }),
        }),
    });
    const r = await runPhase('helo', [heloHost], helo('nonexistent-host.invalid', backends));
    assert.equal(
      `${r.refusal?.reply.code} ${r.refusal?.reply.enhanced} ${r.refusal?.reply.text}`,
      '550 5.7.1 The host name nonexistent-host.invalid given in EHLO does not match your address 192.0.2.7 (ref s1)',
    );
    assert.equal(backends.requests('checkHelo')[0]?.helo, 'nonexistent-host.invalid');
  });

  it('keeps a tag for every transaction of the session, and does not ask about address literals', async () => {
    const header = 'X-Smtpguard-Tag: helo; x.test resolves to 198.51.100.1, not 192.0.2.7';
    const backends = new FakeBackends({
      checkHelo: () =>
        reputation.CheckHeloResponse.fromPartial({
          verdict: verdict(A.LIST_ACTION_TAG, 'helo.host_tagged', { headers: [header] }),
        }),
    });
    const ctx = helo('x.test', backends);
    const r = await runPhase('helo', [heloHost], ctx);
    assert.equal(r.refusal, undefined);
    assert.equal(only(r.records).reasonCode, 'helo.host_tagged');
    assert.deepEqual(ctx.session.beginTransaction('a@b.test', {}).headers, [header]);
    const literal = await runPhase('helo', [heloHost], helo('[192.0.2.7]', backends));
    assert.deepEqual(literal.records, []);
    assert.equal(backends.requests('checkHelo').length, 1);
  });

  it('accepts when the reputation service is down (fail-open, the default)', async () => {
    const down = new FakeBackends({
      checkHelo: () => {
        throw backendDown('reputation', 'checkHelo');
      },
    });
    const r = await runPhase('helo', [heloHost], helo('x.test', down));
    assert.equal(r.refusal, undefined);
    assert.equal(only(r.records).reasonCode, 'helo.host_error');
  });
});

describe('sender-domain', () => {
  const on = config('edge:\n  checks:\n    senderDomain:\n      enabled: true\n');

  it('is opt-in and not run for the null sender or authorized clients', () => {
    assert.equal(senderDomain.enabled?.(mailContext('a@nomx.test')), false);
    assert.equal(senderDomain.enabled?.(mailContext('a@nomx.test', { cfg: on })), true);
    assert.equal(senderDomain.enabled?.(mailContext('', { cfg: on })), false);
    const user = newSession();
    user.user = 'alice@example.org';
    assert.equal(senderDomain.enabled?.(mailContext('a@nomx.test', { cfg: on, session: user })), false);
  });

  it('refuses with the code the service chose (501, MailEnable)', async () => {
    const backends = new FakeBackends({
      checkSenderDomain: () =>
        reputation.CheckSenderDomainResponse.fromPartial({
          verdict: verdict(A.LIST_ACTION_REJECT, 'sender.no_mx', {
            replyCode: 501,
            vars: { domain: 'nomx.test' },
          }),
        }),
    });
    const r = await runPhase('mail', [senderDomain], mailContext('a@nomx.test', { cfg: on, backends }));
    assert.deepEqual(r.refusal?.reply, {
      code: 501,
      enhanced: '5.1.8',
      text: 'Sender domain nomx.test does not have any MX records (ref s1)',
    });
  });
});

describe('uribl', () => {
  const yaml =
    'reputation:\n  uribl:\n    zones:\n      - zone: uri.test\nedge:\n  checks:\n    uribl:\n      maxLines: 2\n';
  const body = (raw: string): MessageBody => ({
    size: raw.length,
    reader: () => Readable.from([Buffer.from(raw)]),
  });
  const data = (raw: string, backends: FakeBackends) => {
    const session = newSession();
    session.beginTransaction('a@sender.test', {});
    return checkContext('data', {
      input: { facts: facts({ bytes: raw.length }), message: body(raw) },
      cfg: config(yaml),
      session,
      backends,
    });
  };

  it('is run only when lists are configured', () => {
    const raw = 'Subject: x\r\n\r\nhi\r\n';
    assert.equal(uribl.enabled?.(data(raw, new FakeBackends())), true);
    const ctx = data(raw, new FakeBackends());
    ctx.cfg = config();
    assert.equal(uribl.enabled?.(ctx), false);
  });

  it('sends the decoded first text part (quoted-printable undone), its first maxLines lines', async () => {
    const backends = new FakeBackends({
      checkContent: () =>
        reputation.CheckContentResponse.fromPartial({
          verdict: verdict(A.LIST_ACTION_REJECT, 'uribl.listed', {
            vars: { host: 'www.spammy.test', zone: 'uri.test' },
          }),
        }),
    });
    const raw = [
      'Subject: x',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'see http://www.spammy.test/?a=3Db and a very long line that is soft-=',
      'broken',
      'second line',
      'third line http://far.test/',
      '',
    ].join('\r\n');
    const r = await runPhase('data', [uribl], data(raw, backends));
    assert.equal(
      r.refusal?.reply.text,
      'Message rejected because it contains links to www.spammy.test, which is listed on uri.test (ref s1)',
    );
    const [req] = backends.requests('checkContent');
    assert.equal(
      req?.text,
      'see http://www.spammy.test/?a=b and a very long line that is soft-broken\nsecond line',
    );
    assert.equal(req?.html, false);
  });
});

describe('message-auth', () => {
  const ar =
    'Authentication-Results: mx.example.test; dkim=pass header.d=dkim.test; dmarc=pass header.from=dkim.test';
  const data = (raw: string, backends: FakeBackends, yaml = '', headerBytes = 10) => {
    const session = newSession();
    session.beginTransaction('a@sender.test', {});
    return checkContext('data', {
      input: {
        facts: facts({ bytes: raw.length, headerBytes }),
        message: { size: raw.length, reader: () => Readable.from([Buffer.from(raw)]) },
      },
      cfg: config(`edge:\n  hostname: mx.example.test\n${yaml}`),
      session,
      backends,
    });
  };

  it('streams the message in pieces of at most 64 KiB after the session, and adds Authentication-Results', async () => {
    const backends = new FakeBackends({
      verifyMessage: () =>
        reputation.VerifyMessageResponse.fromPartial({
          dkim: 'pass',
          verdict: verdict(A.LIST_ACTION_NONE, 'dmarc.pass', { headers: [ar] }),
        }),
    });
    const raw = `Subject: x\r\n\r\n${'y'.repeat(150_000)}\r\n`;
    const ctx = data(raw, backends);
    const r = await runPhase('data', [messageAuth], ctx);
    assert.equal(only(r.records).reasonCode, 'dmarc.pass');
    assert.deepEqual(ctx.tx.headers, [ar]);
    const [pieces = []] = backends.requests('verifyMessage');
    assert.equal(pieces[0]?.session?.clientIp, '192.0.2.7');
    assert.ok(pieces.slice(1).every((p) => p.chunk.length > 0 && p.chunk.length <= 64 * 1024));
    assert.equal(Buffer.concat(pieces.map((p) => p.chunk)).toString(), raw);
  });

  it('refuses a DMARC reject the service decided (550 5.7.1)', async () => {
    const backends = new FakeBackends({
      verifyMessage: () =>
        reputation.VerifyMessageResponse.fromPartial({
          verdict: verdict(A.LIST_ACTION_REJECT, 'dmarc.reject', { vars: { domain: 'dkim.test' } }),
        }),
    });
    const r = await runPhase('data', [messageAuth], data('Subject: x\r\n\r\nb\r\n', backends));
    assert.equal(r.refusal?.reply.text, 'Message rejected: it fails the DMARC policy of dkim.test (ref s1)');
  });

  it('does not verify a message with a header section over maxHeaderBytes: "none"', async () => {
    const backends = new FakeBackends();
    const ctx = data('x', backends, '  checks:\n    messageAuth:\n      maxHeaderBytes: 100\n', 500);
    const r = await runPhase('data', [messageAuth], ctx);
    assert.equal(only(r.records).reasonCode, 'dmarc.skipped');
    assert.deepEqual(ctx.tx.headers, ['Authentication-Results: mx.example.test; none']);
  });

  it('does not verify mail of authenticated (auth=pass) and trusted (none) clients', async () => {
    const backends = new FakeBackends();
    const user = data('Subject: x\r\n\r\nb\r\n', backends);
    user.session.user = 'alice@example.org';
    const r = await runPhase('data', [messageAuth], user);
    assert.equal(only(r.records).reasonCode, 'dmarc.authorized');
    assert.deepEqual(user.tx.headers, [
      'Authentication-Results: mx.example.test; auth=pass smtp.auth=alice@example.org',
    ]);
    const trusted = data('Subject: x\r\n\r\nb\r\n', backends);
    trusted.session.trustedRule = '192.0.2.0/24';
    await runPhase('data', [messageAuth], trusted);
    assert.deepEqual(trusted.tx.headers, ['Authentication-Results: mx.example.test; none']);
    assert.equal(backends.calls.length, 0);
  });

  it('fail-open adds "none" when the service is down; fail-closed refuses 451 4.4.3', async () => {
    const down = () =>
      new FakeBackends({
        verifyMessage: () => {
          throw backendDown('reputation', 'verifyMessage');
        },
      });
    const open = data('Subject: x\r\n\r\nb\r\n', down());
    const r = await runPhase('data', [messageAuth], open);
    assert.equal(r.refusal, undefined);
    assert.deepEqual(open.tx.headers, ['Authentication-Results: mx.example.test; none']);
    const closed = await runPhase(
      'data',
      [messageAuth],
      data(
        'Subject: x\r\n\r\nb\r\n',
        down(),
        '  checks:\n    messageAuth:\n      failureMode: fail-closed\n',
      ),
    );
    assert.equal(`${closed.refusal?.reply.code} ${closed.refusal?.reply.enhanced}`, '451 4.4.3');
  });
});
