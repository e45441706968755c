import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auth, reputation } from '@smtpguard/contracts';
import {
  backendDown,
  config,
  FakeBackends,
  mailContext,
  newSession,
  only,
  runPhase,
} from '../../fakes.test.js';
import { accountRecheck } from './account-recheck.js';
import { emptySender } from './empty-sender.js';
import { mailParams } from './mail-params.js';
import { spf } from './spf.js';
import { submissionAuth } from './submission-auth.js';

describe('mail params', () => {
  it('accepts SIZE, BODY, SMTPUTF8 and AUTH in any case', async () => {
    const params = { SIZE: '1000', BODY: '8BITMIME', SMTPUTF8: true, AUTH: '<>', size: '5' } as const;
    const r = await runPhase('mail', [mailParams], mailContext('alice@example.org', { params }));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });

  it('refuses a parameter of an extension that was not offered 555 5.5.4, naming it', async () => {
    const ctx = mailContext('alice@example.org', { params: { SIZE: '1000', RET: 'FULL' } });
    const r = await runPhase('mail', [mailParams], ctx);
    assert.deepEqual(r.refusal?.reply, {
      code: 555,
      enhanced: '5.5.4',
      text: 'MAIL FROM parameter RET is not supported (ref s1)',
    });
    assert.equal(only(r.records).outcome, 'fail');
  });
});

describe('empty sender', () => {
  const refuse = config('edge:\n  protocol:\n    emptySender: refuse\n');

  it('is run only with edge.protocol.emptySender refuse', () => {
    assert.equal(emptySender.enabled?.(mailContext('')), false);
    assert.equal(emptySender.enabled?.(mailContext('', { cfg: refuse })), true);
  });

  it('refuses MAIL FROM:<> 550 5.1.7', async () => {
    const r = await runPhase('mail', [emptySender], mailContext('', { cfg: refuse }));
    assert.deepEqual(r.refusal?.reply, {
      code: 550,
      enhanced: '5.1.7',
      text: 'Sender address must be specified (ref s1)',
    });
    assert.equal(only(r.records).reasonCode, 'mail.empty_sender');
  });

  it('accepts a sender address', async () => {
    const r = await runPhase('mail', [emptySender], mailContext('alice@example.org', { cfg: refuse }));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });

  it('accepts MAIL FROM:<> by default (the check does not run)', async () => {
    const r = await runPhase('mail', [emptySender], mailContext(''));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });
});

describe('submission auth', () => {
  it('is run on a listener with requireAuth (submission by default), not on mx', () => {
    assert.equal(submissionAuth.enabled?.(mailContext('a@example.org', { session: newSession() })), false);
    const submission = newSession({ listener: 'submission' });
    assert.equal(submissionAuth.enabled?.(mailContext('a@example.org', { session: submission })), true);
    const cfg = config('edge:\n  listeners:\n    mx:\n      requireAuth: true\n');
    assert.equal(submissionAuth.enabled?.(mailContext('a@example.org', { cfg })), true);
  });

  it('refuses an unauthenticated client 530 5.7.0', async () => {
    const session = newSession({ listener: 'submission' });
    const r = await runPhase('mail', [submissionAuth], mailContext('alice@example.org', { session }));
    assert.deepEqual(r.refusal?.reply, {
      code: 530,
      enhanced: '5.7.0',
      text: 'Authentication required: this port accepts mail from authenticated users only (ref s1)',
    });
    assert.equal(
      only(r.records).detail,
      '192.0.2.7 sent MAIL FROM:<alice@example.org> on the submission listener without authenticating.',
    );
  });

  it('accepts an authenticated or trusted client', async () => {
    const user = newSession({ listener: 'submission' });
    user.user = 'alice@example.org';
    const trusted = newSession({ listener: 'submission' });
    trusted.trustedRule = '192.0.2.0/24';
    for (const session of [user, trusted]) {
      const r = await runPhase('mail', [submissionAuth], mailContext('alice@example.org', { session }));
      assert.equal(r.refusal, undefined);
      assert.deepEqual(r.records, []);
    }
  });
});

describe('account recheck', () => {
  const S = auth.AccountState;
  const authenticated = () => {
    const s = newSession({ listener: 'submission' });
    s.user = 'alice@example.org';
    return s;
  };
  const answering = (state: auth.AccountState) =>
    new FakeBackends({ checkAccount: () => auth.CheckAccountResponse.fromPartial({ state }) });

  it('is run for authenticated sessions only, unless turned off', () => {
    assert.equal(accountRecheck.enabled?.(mailContext('a@example.org')), false);
    assert.equal(accountRecheck.enabled?.(mailContext('a@example.org', { session: authenticated() })), true);
    const off = config('edge:\n  checks:\n    accountRecheck:\n      enabled: false\n');
    assert.equal(
      accountRecheck.enabled?.(mailContext('a@example.org', { session: authenticated(), cfg: off })),
      false,
    );
  });

  it('records nothing and keeps the login for an active account', async () => {
    const backends = answering(S.ACCOUNT_STATE_ACTIVE);
    const session = authenticated();
    const r = await runPhase(
      'mail',
      [accountRecheck],
      mailContext('alice@example.org', { session, backends }),
    );
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
    assert.equal(session.user, 'alice@example.org');
    assert.equal(backends.requests('checkAccount')[0]?.account, 'alice@example.org');
  });

  it("refuses a disabled account 550 5.7.8 and drops the session's authentication", async () => {
    const session = authenticated();
    const ctx = mailContext('alice@example.org', { session, backends: answering(S.ACCOUNT_STATE_DISABLED) });
    const r = await runPhase('mail', [accountRecheck], ctx);
    assert.deepEqual(r.refusal?.reply, {
      code: 550,
      enhanced: '5.7.8',
      text: 'Login credentials are no longer valid, please authenticate again (ref s1)',
    });
    assert.equal(session.user, '');
    const d = only(r.records);
    assert.equal(d.reasonCode, 'account.revoked');
    assert.deepEqual(d.attributes, { account: 'alice@example.org', state: 'disabled' });
    assert.equal(
      d.detail,
      "alice@example.org authenticated earlier in session s1, but the account is now disabled; the session's " +
        'authentication was dropped.',
    );
  });

  for (const [state, words] of [
    [S.ACCOUNT_STATE_UNKNOWN, 'removed from the directory'],
    [S.ACCOUNT_STATE_DOMAIN_DISABLED, 'in a disabled domain'],
    [S.ACCOUNT_STATE_AUTH_DENIED, 'denied authentication'],
    [S.ACCOUNT_STATE_LOCKED_OUT, 'locked out'],
  ] as const) {
    it(`refuses an account that is ${words}`, async () => {
      const session = authenticated();
      const r = await runPhase(
        'mail',
        [accountRecheck],
        mailContext('a@example.org', { session, backends: answering(state) }),
      );
      assert.equal(r.refusal?.reason, 'account.revoked');
      assert.equal(only(r.records).attributes?.state, words);
      assert.equal(session.user, '');
    });
  }

  describe('when the auth service cannot be asked', () => {
    const down = () =>
      new FakeBackends({
        checkAccount: () => {
          throw backendDown('auth', 'checkAccount');
        },
      });

    it('fail-closed (the default) refuses 451 4.3.0 and keeps the login', async () => {
      const session = authenticated();
      const r = await runPhase(
        'mail',
        [accountRecheck],
        mailContext('a@example.org', { session, backends: down() }),
      );
      assert.deepEqual(r.refusal?.reply, {
        code: 451,
        enhanced: '4.3.0',
        text: 'Your account cannot be verified now, please try again later (ref s1)',
      });
      assert.equal(r.refusal?.reason, 'account.unavailable');
      assert.equal(only(r.records).outcome, 'error');
      assert.equal(session.user, 'alice@example.org');
    });

    it('fail-open keeps the earlier authentication and records the error', async () => {
      const cfg = config('edge:\n  checks:\n    accountRecheck:\n      failureMode: fail-open\n');
      const session = authenticated();
      const r = await runPhase(
        'mail',
        [accountRecheck],
        mailContext('a@example.org', { session, backends: down(), cfg }),
      );
      assert.equal(r.refusal, undefined);
      assert.equal(only(r.records).reasonCode, 'account.unavailable');
      assert.equal(only(r.records).attributes?.failure_mode, 'fail-open');
      assert.equal(session.user, 'alice@example.org');
    });
  });
});

describe('spf', () => {
  const R = reputation.SpfResult;
  const A = reputation.ListAction;
  const answering = (
    spfResult: reputation.SpfResult,
    verdict: Partial<reputation.Verdict> = {},
    explanation = '',
  ) =>
    new FakeBackends({
      checkSender: () =>
        reputation.CheckSenderResponse.fromPartial({
          spf: spfResult,
          spfDomain: 'example.org',
          spfExplanation: explanation,
          verdict: {
            action: A.LIST_ACTION_NONE,
            reasonCode: 'spf.pass',
            vars: { domain: 'example.org', result: 'pass', explanation },
            ...verdict,
          },
        }),
    });

  it('is run only when enabled and for clients that are neither authenticated nor trusted', () => {
    assert.equal(spf.enabled?.(mailContext('a@example.org')), true);
    const user = newSession();
    user.user = 'alice@example.org';
    assert.equal(spf.enabled?.(mailContext('a@example.org', { session: user })), false);
    const trusted = newSession();
    trusted.trustedRule = '192.0.2.0/24';
    assert.equal(spf.enabled?.(mailContext('a@example.org', { session: trusted })), false);
    const off = config('edge:\n  checks:\n    spf:\n      enabled: false\n');
    assert.equal(spf.enabled?.(mailContext('a@example.org', { cfg: off })), false);
  });

  it('asks about the session with its sender', async () => {
    const backends = answering(R.SPF_RESULT_PASS);
    await runPhase('mail', [spf], mailContext('alice@example.org', { backends }));
    const [req] = backends.requests('checkSender');
    assert.equal(req?.session?.sender, 'alice@example.org');
    assert.equal(req?.session?.clientIp, '192.0.2.7');
  });

  it('records a pass, keeps the domain for greylisting and adds the Received-SPF field', async () => {
    const header =
      'Received-SPF: pass (mx: domain of alice@example.org designates 192.0.2.7) client-ip=192.0.2.7;';
    const ctx = mailContext('alice@example.org', {
      backends: answering(R.SPF_RESULT_PASS, { headers: [header] }),
    });
    const r = await runPhase('mail', [spf], ctx);
    assert.equal(r.refusal, undefined);
    assert.equal(ctx.tx.spfPassDomain, 'example.org');
    assert.deepEqual(ctx.tx.headers, [header]);
    const d = only(r.records);
    assert.equal(d.outcome, 'pass');
    assert.equal(d.reasonCode, 'spf.pass');
    assert.deepEqual(d.attributes, { result: 'pass', domain: 'example.org' });
  });

  it('records a fail the service accepts (outcome fail, no reply)', async () => {
    const ctx = mailContext('alice@example.org', {
      backends: answering(R.SPF_RESULT_FAIL, { reasonCode: 'spf.fail' }),
    });
    const r = await runPhase('mail', [spf], ctx);
    assert.equal(r.refusal, undefined);
    assert.equal(ctx.tx.spfPassDomain, '');
    assert.equal(only(r.records).outcome, 'fail');
    assert.equal(only(r.records).reasonCode, 'spf.fail');
    assert.equal(only(r.records).reply, undefined);
  });

  it('refuses a fail the service rejects, with the code it chose (554 as MailEnable)', async () => {
    const backends = answering(
      R.SPF_RESULT_FAIL,
      {
        action: A.LIST_ACTION_REJECT,
        reasonCode: 'spf.fail',
        replyCode: 554,
        vars: { domain: 'example.org', result: 'fail', explanation: 'Not authorized' },
      },
      'Not authorized',
    );
    const r = await runPhase('mail', [spf], mailContext('alice@example.org', { backends }));
    assert.deepEqual(r.refusal?.reply, {
      code: 554,
      enhanced: '5.7.23',
      text: 'The IP address of the sender (192.0.2.7) does not match the SPF record of example.org: Not authorized (ref s1)',
    });
    assert.equal(
      only(r.records).detail,
      '192.0.2.7 sent as <alice@example.org>, but the SPF record of example.org does not authorize it. ' +
        'Not authorized',
    );
  });

  it('defers a temperror (451 4.4.3) and records an accepted permerror as an error', async () => {
    const temp = await runPhase(
      'mail',
      [spf],
      mailContext('alice@example.org', {
        backends: answering(R.SPF_RESULT_TEMPERROR, {
          action: A.LIST_ACTION_DEFER,
          reasonCode: 'spf.temperror',
        }),
      }),
    );
    assert.equal(temp.refusal?.reply.code, 451);
    assert.equal(temp.refusal?.reply.enhanced, '4.4.3');
    const perm = await runPhase(
      'mail',
      [spf],
      mailContext('alice@example.org', {
        backends: answering(R.SPF_RESULT_PERMERROR, { reasonCode: 'spf.permerror' }),
      }),
    );
    assert.equal(perm.refusal, undefined);
    assert.equal(only(perm.records).outcome, 'error');
  });

  it('records none and neutral as spf.not_pass (skip), and refuses a reason it does not declare', async () => {
    const ctx = mailContext('alice@example.org', {
      backends: answering(R.SPF_RESULT_NEUTRAL, {
        reasonCode: 'spf.not_pass',
        vars: { domain: 'example.org', result: 'neutral' },
      }),
    });
    const r = await runPhase('mail', [spf], ctx);
    assert.equal(only(r.records).outcome, 'skip');
    assert.equal(only(r.records).detail, 'SPF for example.org and 192.0.2.7: neutral.');
    const bad = mailContext('alice@example.org', {
      backends: answering(R.SPF_RESULT_PASS, { reasonCode: 'relay.denied' }),
    });
    await assert.rejects(runPhase('mail', [spf], bad), /does not declare/);
  });

  describe('when the reputation service cannot be asked', () => {
    const down = () =>
      new FakeBackends({
        checkSender: () => {
          throw backendDown('reputation', 'checkSender');
        },
      });

    it('fail-open (the default) records spf.error and accepts', async () => {
      const r = await runPhase('mail', [spf], mailContext('alice@example.org', { backends: down() }));
      assert.equal(r.refusal, undefined);
      assert.equal(only(r.records).reasonCode, 'spf.error');
      assert.equal(only(r.records).attributes?.failure_mode, 'fail-open');
    });

    it('fail-closed refuses 451 4.4.3', async () => {
      const cfg = config('edge:\n  checks:\n    spf:\n      failureMode: fail-closed\n');
      const r = await runPhase('mail', [spf], mailContext('alice@example.org', { backends: down(), cfg }));
      assert.equal(r.refusal?.reason, 'spf.error');
      assert.equal(r.refusal?.reply.code, 451);
      assert.equal(r.refusal?.reply.enhanced, '4.4.3');
    });
  });
});
