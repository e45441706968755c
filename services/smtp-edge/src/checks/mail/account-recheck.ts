import { auth } from '@smtpguard/contracts';
import { defineCheck } from '../../engine/check.js';
import { sessionContext } from '../../session.js';

const STATES: Partial<Record<auth.AccountState, string>> = {
  [auth.AccountState.ACCOUNT_STATE_UNKNOWN]: 'removed from the directory',
  [auth.AccountState.ACCOUNT_STATE_DISABLED]: 'disabled',
  [auth.AccountState.ACCOUNT_STATE_DOMAIN_DISABLED]: 'in a disabled domain',
  [auth.AccountState.ACCOUNT_STATE_AUTH_DENIED]: 'denied authentication',
  [auth.AccountState.ACCOUNT_STATE_LOCKED_OUT]: 'locked out',
};

/**
 * hMailServer's re-authentication: a session may stay open for hours, so before each transaction of an
 * authenticated session the account is asked about again. Disabled, locked or removed since the login:
 * 550 5.7.8, and the session's authentication is dropped (the client may authenticate again).
 */
export const accountRecheck = defineCheck({
  name: 'account-recheck',
  phase: 'mail',
  reasons: ['account.revoked', 'account.unavailable'],
  settings: ['edge.checks.accountRecheck.enabled', 'edge.checks.accountRecheck.failureMode'],
  enabled: (ctx) => ctx.cfg.edge.checks.accountRecheck.enabled && Boolean(ctx.session.user),
  onBackendError: {
    reason: 'account.unavailable',
    mode: (cfg) => cfg.edge.checks.accountRecheck.failureMode,
  },
  async run(ctx) {
    const account = ctx.session.user;
    const r = await ctx.deps.backends.call('auth', ctx.deps.backends.auth.checkAccount, {
      session: sessionContext(ctx.session),
      account,
    });
    if (r.state === auth.AccountState.ACCOUNT_STATE_ACTIVE) return undefined;
    const state = STATES[r.state] ?? auth.accountStateToJSON(r.state);
    ctx.session.user = '';
    return {
      outcome: 'fail',
      reason: 'account.revoked',
      vars: { user: account, state },
      attributes: { account, state },
      refuse: true,
    };
  },
});
