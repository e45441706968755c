import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auth } from '@smtpguard/contracts';
import {
  backendDown,
  config,
  FakeBackends,
  mailContext,
  newSession,
  only,
  rcptContext,
  runPhase,
} from '../../fakes.test.js';
import { localOnly } from '../rcpt/local-only.js';
import { recipientQuota } from '../rcpt/recipient-quota.js';
import { relay } from '../rcpt/relay.js';
import { popBeforeSmtp } from './pop-before-smtp.js';
import { sender } from './sender.js';
import { sendingLimit } from './sending-limit.js';
import { trustedHost } from './trusted-host.js';

const local = (o: Partial<auth.ResolveSenderResponse> = {}) =>
  new FakeBackends({
    resolveSender: () =>
      auth.ResolveSenderResponse.fromPartial({
        domainLocal: true,
        addressKnown: true,
        domain: 'example.test',
        authorizationRequired: true,
        ...o,
      }),
  });

describe('sender (local-sender authorization, ownership, unknown local senders)', () => {
  it('refuses an unauthorized local sender 550 5.7.1 and names every way that failed', async () => {
    const ctx = mailContext('alice@example.test', { backends: local() });
    const r = await runPhase('mail', [sender], ctx);
    assert.equal(
      `${r.refusal?.reply.code} ${r.refusal?.reply.enhanced} ${r.refusal?.reply.text}`,
      '550 5.7.1 Sender <alice@example.test> is in a local domain: authenticate before sending as it (ref s1)',
    );
    const d = only(r.records);
    assert.equal(d.reasonCode, 'mail.local_sender_unauthorized');
    assert.match(
      d.detail ?? '',
      /no SMTP AUTH in session .*is not in edge.trustedNetworks.*has no allowed IPs.*POP-before-SMTP is off/,
    );
  });

  it('refuses temporarily with the administrator’s words when the domain says so', async () => {
    const backends = local({ refusalTemporary: true, refusalMessage: 'Use port 587 with your password' });
    const r = await runPhase('mail', [sender], mailContext('alice@example.test', { backends }));
    assert.deepEqual(r.refusal?.reply, {
      code: 451,
      enhanced: '4.7.1',
      text: 'Use port 587 with your password (ref s1)',
    });
    assert.equal(only(r.records).outcome, 'defer');
  });

  it('passes authorized sessions and IPs allowed for the domain', async () => {
    const s = newSession();
    s.trustedRule = '10.0.0.0/8';
    const r = await runPhase(
      'mail',
      [sender],
      mailContext('alice@example.test', { backends: local(), session: s }),
    );
    assert.equal(r.refusal, undefined);
    assert.match(only(r.records).detail ?? '', /trusted \(10\.0\.0\.0\/8\)/);
    const r2 = await runPhase(
      'mail',
      [sender],
      mailContext('alice@example.test', { backends: local({ allowedIpRule: '192.0.2.0/24' }) }),
    );
    assert.equal(r2.refusal, undefined);
  });

  it('refuses an authenticated user using an address that is not theirs 551 5.7.1', async () => {
    const s = newSession({ listener: 'submission' });
    s.user = 'bob@example.test';
    const r = await runPhase(
      'mail',
      [sender],
      mailContext('ceo@other.test', { backends: local({ domainLocal: false }), session: s }),
    );
    assert.equal(r.refusal?.reply.code, 551);
    assert.equal(only(r.records).reasonCode, 'mail.sender_not_owned');
    const off = config('edge: { checks: { sender: { ownership: false } } }');
    const ok = await runPhase(
      'mail',
      [sender],
      mailContext('ceo@other.test', { backends: local({ domainLocal: false }), session: s, cfg: off }),
    );
    assert.equal(ok.refusal, undefined);
  });

  it('refuses an unknown local sender 551 (ME-E0109) when local-sender authorization is off', async () => {
    const backends = local({ addressKnown: false, authorizationRequired: false });
    const r = await runPhase('mail', [sender], mailContext('nobody@example.test', { backends }));
    assert.equal(r.refusal?.reply.code, 551);
    assert.equal(only(r.records).reasonCode, 'relay.denied.sender_unknown');
  });

  it('looks the null sender up only for an account, whose local-only policy then applies', async () => {
    assert.equal(sender.enabled?.(mailContext('')), false);
    const s = newSession({ listener: 'submission' });
    s.user = 'eve@example.test';
    const ctx = mailContext('', { session: s, backends: local({ domainLocal: false, localOnly: true }) });
    const r = await runPhase('mail', [sender], ctx);
    assert.equal(r.refusal, undefined, 'a bounce is not refused for ownership');
    assert.equal(ctx.tx.senderInfo?.localOnly, true);
  });

  it('fails closed 451 4.3.0 by default when the directory cannot be asked', async () => {
    const backends = new FakeBackends({
      resolveSender: () => {
        throw backendDown('auth', 'resolveSender');
      },
    });
    const r = await runPhase('mail', [sender], mailContext('alice@example.test', { backends }));
    assert.equal(r.refusal?.reply.code, 451);
  });
});

describe('pop-before-smtp and trusted-host', () => {
  const popOn = config('auth: { popBeforeSmtp: { enabled: true } }');
  it('authorizes the transaction for the account of the login', async () => {
    const backends = new FakeBackends({
      checkPopBeforeSmtp: () =>
        auth.CheckPopBeforeSmtpResponse.fromPartial({
          authorized: true,
          account: 'alice@example.test',
          reasonCode: 'pop.authorized',
        }),
    });
    const ctx = mailContext('alice@example.test', { backends, cfg: popOn });
    const r = await runPhase('mail', [popBeforeSmtp], ctx);
    assert.equal(only(r.records).reasonCode, 'pop.authorized');
    assert.equal(ctx.session.popAccount, 'alice@example.test');
    assert.equal(ctx.session.authorized, true);
    ctx.session.beginTransaction('x@y.test', {});
    assert.equal(ctx.session.authorized, false, 'decided again for each transaction');
  });

  it('is off unless auth.popBeforeSmtp.enabled', () => {
    assert.equal(popBeforeSmtp.enabled?.(mailContext('a@b.test')), false);
  });

  it('trusts a client by its verified host name', async () => {
    const s = newSession();
    s.clientHostname = 'mx1.partner.test';
    const ctx = mailContext('a@partner.test', { session: s, trusted: ['.partner.test'] });
    const r = await runPhase('mail', [trustedHost], ctx);
    assert.equal(only(r.records).reasonCode, 'mail.trusted_host');
    assert.equal(s.trustedRule, '.partner.test');
  });
});

describe('sending limits, local-only, relay sender criteria', () => {
  const quota = (allowed: boolean) =>
    new FakeBackends({
      consumeSendingQuota: (req) =>
        auth.ConsumeSendingQuotaResponse.fromPartial({
          allowed,
          limit: 2,
          used: 2,
          recipientLimit: 3,
          recipientsUsed: 3,
          reasonCode: allowed
            ? 'quota.ok'
            : req.messages
              ? 'quota.messages_exceeded'
              : 'quota.recipients_exceeded',
        }),
    });
  it('answers 451 4.7.1 over the hourly message and recipient limits', async () => {
    const s = newSession({ listener: 'submission' });
    s.user = 'alice@example.test';
    const m = await runPhase(
      'mail',
      [sendingLimit],
      mailContext('alice@example.test', { session: s, backends: quota(false) }),
    );
    assert.deepEqual(m.refusal?.reply, {
      code: 451,
      enhanced: '4.7.1',
      text: 'This mail account has sent too many messages in a short amount of time, please try later (ref s1)',
    });
    const r = await runPhase(
      'rcpt',
      [recipientQuota],
      rcptContext('x@remote.test', { session: s, backends: quota(false) }),
    );
    assert.equal(only(r.records).reasonCode, 'quota.recipients_exceeded');
  });

  it('refuses remote recipients of a local-only account 452 4.7.1', async () => {
    const s = newSession({ listener: 'submission' });
    s.user = 'bob@example.test';
    s.beginTransaction('bob@example.test', {});
    if (s.tx) s.tx.senderInfo = auth.ResolveSenderResponse.fromPartial({ localOnly: true });
    const r = await runPhase('rcpt', [localOnly], rcptContext('x@remote.test', { session: s }));
    assert.deepEqual(r.refusal?.reply, {
      code: 452,
      enhanced: '4.7.1',
      text: 'You are not permitted to send to remote domains (ref s1)',
    });
  });

  it('grants relay to POP-before-SMTP sessions, and to known local senders only with edge.relay.localSenders', async () => {
    const s = newSession();
    s.beginTransaction('alice@example.test', {});
    if (s.tx)
      s.tx.senderInfo = auth.ResolveSenderResponse.fromPartial({ domainLocal: true, addressKnown: true });
    const denied = await runPhase('rcpt', [relay], rcptContext('x@remote.test', { session: s }));
    assert.equal(only(denied.records).reasonCode, 'relay.denied');
    const unsafe = config('edge: { relay: { localSenders: true } }');
    const granted = await runPhase(
      'rcpt',
      [relay],
      rcptContext('x@remote.test', { session: s, cfg: unsafe }),
    );
    assert.equal(only(granted.records).reasonCode, 'relay.granted.local_sender');
    s.popAccount = 'alice@example.test';
    const pop = await runPhase('rcpt', [relay], rcptContext('x@remote.test', { session: s }));
    assert.equal(only(pop.records).reasonCode, 'relay.granted.pop_before_smtp');
  });
});

describe('one definition of authorized: DNSBL refusals', () => {
  it('does not refuse a listed client authorized by POP-before-SMTP or a trusted host name', async () => {
    const { dnsbl } = await import('../rcpt/dnsbl.js');
    const { reputation } = await import('@smtpguard/contracts');
    const s = newSession();
    s.reputation = Promise.resolve({
      kind: 'verdict',
      verdict: reputation.Verdict.fromPartial({
        action: reputation.ListAction.LIST_ACTION_REJECT,
        reasonCode: 'dnsbl.listed',
      }),
    });
    assert.equal(dnsbl.enabled?.(rcptContext('alice@example.test', { session: s })), true);
    s.popAccount = 'alice@example.test';
    assert.equal(dnsbl.enabled?.(rcptContext('alice@example.test', { session: s })), false);
    s.popAccount = '';
    s.trustedRule = '.partner.test';
    assert.equal(dnsbl.enabled?.(rcptContext('alice@example.test', { session: s })), false);
  });
});
