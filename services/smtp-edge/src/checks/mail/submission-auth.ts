import { defineCheck } from '../../engine/check.js';

/** A listener with requireAuth (submission) takes mail only from authenticated or trusted clients (530 5.7.0). */
export const submissionAuth = defineCheck({
  name: 'submission',
  phase: 'mail',
  reasons: ['submission.auth_required'],
  settings: ['edge.listeners.*.requireAuth'],
  enabled: (ctx) => ctx.cfg.edge.listeners[ctx.session.listener].requireAuth,
  run(ctx) {
    if (ctx.session.authorized) return undefined;
    return { outcome: 'fail', reason: 'submission.auth_required', refuse: true };
  },
});
