import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auth, common } from '@smtpguard/contracts';
import {
  backendDown,
  checkContext,
  config,
  FakeBackends,
  newSession,
  only,
  runPhase,
} from '../../fakes.test.js';
import type { Session } from '../../session.js';
import { authenticate } from './authenticate.js';

const PASSWORD = 'correct horse battery staple';

function login(backends: FakeBackends, session: Session = newSession({ listener: 'submission' })) {
  return checkContext('auth', {
    input: { mechanism: 'PLAIN', username: 'Alice', password: PASSWORD, authzid: '' },
    session,
    backends,
  });
}

const answering = (r: Partial<auth.AuthenticateResponse>) =>
  new FakeBackends({ authenticate: () => auth.AuthenticateResponse.fromPartial(r) });

describe('auth', () => {
  it('asks the auth service with the mechanism, the credentials and the session', async () => {
    const backends = answering({ result: auth.AuthResult.AUTH_RESULT_OK, account: 'alice@example.org' });
    await runPhase('auth', [authenticate], login(backends));
    const [req] = backends.requests('authenticate');
    assert.equal(req?.mechanism, 'PLAIN');
    assert.equal(req?.username, 'Alice');
    assert.equal(req?.password, PASSWORD);
    assert.equal(req?.session?.clientIp, '192.0.2.7');
    assert.equal(req?.session?.listener, common.Listener.LISTENER_SUBMISSION);
  });

  it('logs the session in as the canonical account on success', async () => {
    const session = newSession({ listener: 'submission' });
    const backends = answering({ result: auth.AuthResult.AUTH_RESULT_OK, account: 'alice@example.org' });
    const r = await runPhase('auth', [authenticate], login(backends, session));
    assert.equal(r.refusal, undefined);
    assert.equal(session.user, 'alice@example.org');
    const d = only(r.records);
    assert.equal(d.outcome, 'pass');
    assert.equal(d.reasonCode, 'auth.ok');
    assert.equal(d.detail, '192.0.2.7 authenticated as alice@example.org with PLAIN.');
  });

  it('refuses bad credentials 535 5.7.8 and leaves the session unauthenticated', async () => {
    const session = newSession({ listener: 'submission' });
    const backends = answering({
      result: auth.AuthResult.AUTH_RESULT_BAD_CREDENTIALS,
      reasonCode: 'auth.bad_credentials',
    });
    const r = await runPhase('auth', [authenticate], login(backends, session));
    assert.deepEqual(r.refusal?.reply, {
      code: 535,
      enhanced: '5.7.8',
      text: 'Authentication failed: user name or password is incorrect (ref s1)',
    });
    assert.equal(session.user, '');
    const d = only(r.records);
    assert.equal(d.outcome, 'fail');
    assert.equal(
      d.detail,
      '192.0.2.7 tried to authenticate as Alice with PLAIN and the credentials did not match.',
    );
  });

  it('never puts the password into the decision', async () => {
    for (const result of [auth.AuthResult.AUTH_RESULT_OK, auth.AuthResult.AUTH_RESULT_BAD_CREDENTIALS]) {
      const r = await runPhase(
        'auth',
        [authenticate],
        login(answering({ result, account: 'alice@example.org' })),
      );
      assert.equal(r.records.length, 1);
      assert.ok(!JSON.stringify(r.records).includes(PASSWORD));
    }
  });

  for (const [result, reasonCode, code, enhanced] of [
    [auth.AuthResult.AUTH_RESULT_ACCOUNT_DISABLED, 'auth.account_disabled', 504, '5.7.1'],
    [auth.AuthResult.AUTH_RESULT_MECHANISM_UNSUPPORTED, 'auth.mechanism_unsupported', 504, '5.5.4'],
  ] as const) {
    it(`refuses ${reasonCode} with its own reply ${code} ${enhanced}`, async () => {
      const r = await runPhase('auth', [authenticate], login(answering({ result, reasonCode })));
      assert.equal(r.refusal?.reason, reasonCode);
      assert.equal(r.refusal?.reply.code, code);
      assert.equal(r.refusal?.reply.enhanced, enhanced);
    });
  }

  it('refuses as bad credentials when the service gives a reason that is not an auth refusal', async () => {
    for (const reasonCode of ['auth.ok', 'rcpt.unknown_user', 'auth.nonsense', '']) {
      const backends = answering({ result: auth.AuthResult.AUTH_RESULT_LOCKED_OUT, reasonCode });
      const session = newSession({ listener: 'submission' });
      const r = await runPhase('auth', [authenticate], login(backends, session));
      assert.equal(r.refusal?.reason, 'auth.bad_credentials', reasonCode);
      assert.equal(session.user, '');
    }
  });

  it('answers 454 4.7.0 when the auth service cannot be asked, whatever the configuration', async () => {
    const backends = new FakeBackends({
      authenticate: () => {
        throw backendDown('auth', 'authenticate');
      },
    });
    const session = newSession({ listener: 'submission' });
    const r = await runPhase('auth', [authenticate], login(backends, session));
    assert.deepEqual(r.refusal?.reply, {
      code: 454,
      enhanced: '4.7.0',
      text: 'Temporary authentication failure, please try again later (ref s1)',
    });
    assert.equal(session.user, '');
    const d = only(r.records);
    assert.equal(d.outcome, 'error');
    assert.equal(d.reasonCode, 'auth.unavailable');
    assert.equal(d.attributes?.failure_mode, 'fail-closed');
    const lenient = config(
      'edge:\n  checks:\n    recipient:\n      failureMode: fail-open\n    accountRecheck:\n      failureMode: fail-open\n',
    );
    assert.equal(authenticate.onBackendError?.mode(lenient), 'fail-closed');
  });
});
