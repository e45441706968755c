import { reputation } from '@smtpguard/contracts';
import type { MessageBody } from '../../engine/check.js';
import { defineCheck } from '../../engine/check.js';
import { type Session, sessionContext } from '../../session.js';
import { applyVerdict } from '../reputation-verdict.js';

const REASONS = ['dmarc.pass', 'dmarc.none', 'dmarc.fail', 'dmarc.quarantine', 'dmarc.reject'] as const;

// Size of the pieces the message is streamed to the reputation service in (well below gRPC's 4 MB limit).
const CHUNK = 64 * 1024;

async function* pieces(
  session: Session,
  message: MessageBody,
): AsyncGenerator<reputation.VerifyMessageRequest> {
  yield reputation.VerifyMessageRequest.fromPartial({ session: sessionContext(session) });
  for await (const chunk of message.reader()) {
    const b = chunk as Buffer;
    for (let i = 0; i < b.length; i += CHUNK) {
      yield reputation.VerifyMessageRequest.fromPartial({ chunk: b.subarray(i, i + CHUNK) });
    }
  }
}

/**
 * DKIM, ARC and DMARC at the end of DATA: the message is streamed to reputation.VerifyMessage in 64 KiB pieces
 * (never whole in one gRPC message), which answers with the Authentication-Results header field (RFC 8601) the
 * message gets, and the DMARC policy as reputation.dmarc applies it: p=reject refused 550 5.7.1 or tagged,
 * p=quarantine tagged. Authenticated and trusted clients' messages are not verified.
 */
export const messageAuth = defineCheck({
  name: 'message-auth',
  phase: 'data',
  reasons: [...REASONS, 'dmarc.error'],
  settings: ['edge.checks.messageAuth.enabled', 'edge.checks.messageAuth.failureMode', 'reputation.dmarc'],
  enabled: (ctx) => ctx.cfg.edge.checks.messageAuth.enabled && !ctx.session.authorized,
  onBackendError: { reason: 'dmarc.error', mode: (cfg) => cfg.edge.checks.messageAuth.failureMode },
  async run(ctx) {
    const backends = ctx.deps.backends;
    const r = await backends.stream(
      'reputation',
      backends.reputation.verifyMessage,
      pieces(ctx.session, ctx.input.message),
    );
    const v = applyVerdict(r.verdict, REASONS);
    return {
      ...v,
      attributes: { dkim: r.dkim, spf: r.spf, arc: r.arc, dmarc: r.dmarc, policy: r.dmarcPolicy },
    };
  },
});
