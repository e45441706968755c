import { auth } from '@smtpguard/contracts';
import { isReasonCode } from '@smtpguard/reasons';
import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';

// Reasons the auth service answers with; anything else it says is a bad-credentials refusal.
const REFUSALS = ['auth.bad_credentials', 'auth.account_disabled', 'auth.mechanism_unsupported'] as const;
type Refusal = (typeof REFUSALS)[number];
const isRefusal = (code: string): code is Refusal =>
  isReasonCode(code) && (REFUSALS as readonly string[]).includes(code);

/** SMTP AUTH through the auth service. Authentication never fails open: an outage is 454 4.7.0. */
export const authenticate = defineCheck({
  name: 'auth',
  phase: 'auth',
  reasons: ['auth.ok', ...REFUSALS, 'auth.unavailable'],
  settings: ['auth.mechanisms', 'auth.domains'],
  onBackendError: { reason: 'auth.unavailable', mode: () => 'fail-closed' },
  async run(ctx) {
    const { mechanism, username, password } = ctx.input;
    const r = await ctx.deps.backends.call('auth', ctx.deps.backends.auth.authenticate, {
      session: sessionContext(ctx.session),
      mechanism,
      username,
      password,
      challenge: '',
      response: '',
    });
    const vars = { user: username, mechanism };
    if (r.result === auth.AuthResult.AUTH_RESULT_OK) {
      ctx.session.user = r.account;
      return { outcome: 'pass', reason: 'auth.ok', vars: { ...vars, user: r.account } };
    }
    const reason = isRefusal(r.reasonCode) ? r.reasonCode : 'auth.bad_credentials';
    return { outcome: 'fail', reason, vars, refuse: true };
  },
});
