import { auth } from '@smtpguard/contracts';
import { isReasonCode } from '@smtpguard/reasons';
import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';

// Reasons the auth service answers with; anything else it says is a bad-credentials refusal.
const REFUSALS = [
  'auth.bad_credentials',
  'auth.account_disabled',
  'auth.domain_disabled',
  'auth.denied',
  'auth.locked_out',
  'auth.client_locked_out',
  'auth.authzid_refused',
  'auth.mechanism_unsupported',
] as const;
type Refusal = (typeof REFUSALS)[number];
const isRefusal = (code: string): code is Refusal =>
  isReasonCode(code) && (REFUSALS as readonly string[]).includes(code);

/**
 * SMTP AUTH through the auth service (lockout, prevent-authentication, disabled mailbox or domain, authzid).
 * Authentication never fails open: an outage is 454 4.7.0. Each refusal is a 5xx and so counts toward the
 * session's error threshold (edge.limits.maxErrors).
 */
export const authenticate = defineCheck({
  name: 'auth',
  phase: 'auth',
  reasons: ['auth.ok', ...REFUSALS, 'auth.unavailable'],
  settings: ['auth.mechanisms', 'auth.domains', 'auth.lockout', 'auth.allowAuthzid'],
  onBackendError: { reason: 'auth.unavailable', mode: () => 'fail-closed' },
  async run(ctx) {
    const { mechanism, username, password, authzid } = ctx.input;
    const r = await ctx.deps.backends.call('auth', ctx.deps.backends.auth.authenticate, {
      session: sessionContext(ctx.session),
      mechanism,
      username,
      password,
      challenge: '',
      response: '',
      authzid,
    });
    const vars = {
      user: username,
      mechanism,
      authzid,
      failures: r.failures,
      retry_after: r.retryAfterSeconds,
    };
    if (r.result === auth.AuthResult.AUTH_RESULT_OK) {
      ctx.session.user = r.account;
      return { outcome: 'pass', reason: 'auth.ok', vars: { ...vars, user: r.account } };
    }
    const reason = isRefusal(r.reasonCode) ? r.reasonCode : 'auth.bad_credentials';
    const attributes = r.failures ? { failures: String(r.failures) } : undefined;
    return { outcome: 'fail', reason, vars, attributes, refuse: true };
  },
});
