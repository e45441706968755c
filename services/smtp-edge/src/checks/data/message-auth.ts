import { reputation } from '@smtpguard/contracts';
import { BackendError } from '@smtpguard/grpc-kit';
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
 * DKIM, ARC and DMARC at the end of DATA: the message is streamed in 64 KiB pieces to reputation.VerifyMessage
 * (never whole in one gRPC message, within edge.checks.messageAuth.timeoutMs), which answers with the
 * Authentication-Results header field (RFC 8601) the message gets, and the DMARC policy as reputation.dmarc
 * applies it: p=reject refused 550 5.7.1 or tagged, p=quarantine tagged. A message larger than maxMessageBytes,
 * or whose header section is larger than maxHeaderBytes, is not verified; it and a message the service could not
 * verify (fail-open) get "Authentication-Results: <host>; none" (RFC 8601 2.2: nothing was verified).
 * Authenticated and trusted clients' messages are not verified: they get "auth=pass smtp.auth=<user>" or "none".
 */
export const messageAuth = defineCheck({
  name: 'message-auth',
  phase: 'data',
  reasons: [...REASONS, 'dmarc.skipped', 'dmarc.authorized', 'dmarc.error'],
  settings: [
    'edge.checks.messageAuth.enabled',
    'edge.checks.messageAuth.failureMode',
    'edge.checks.messageAuth.maxMessageBytes',
    'edge.checks.messageAuth.maxHeaderBytes',
    'edge.checks.messageAuth.timeoutMs',
    'reputation.dmarc',
  ],
  enabled: (ctx) => ctx.cfg.edge.checks.messageAuth.enabled,
  async run(ctx) {
    const settings = ctx.cfg.edge.checks.messageAuth;
    const none = [`Authentication-Results: ${ctx.cfg.edge.hostname}; none`];
    const s = ctx.session;
    if (s.authorized) {
      // Mail of the host's own users is not verified; the field says how it came in (RFC 8601 2.7.4).
      const user = s.user.replace(/[^\x21-\x7e]/g, '');
      return {
        outcome: 'skip',
        reason: 'dmarc.authorized',
        vars: { how: s.user ? `authenticated as ${s.user}` : `trusted (${s.trustedRule})` },
        headers: s.user
          ? [`Authentication-Results: ${ctx.cfg.edge.hostname}; auth=pass smtp.auth=${user}`]
          : none,
      };
    }
    const { bytes, headerBytes } = ctx.input.facts;
    if (bytes > settings.maxMessageBytes || headerBytes > settings.maxHeaderBytes) {
      return {
        outcome: 'skip',
        reason: 'dmarc.skipped',
        vars: { bytes, header_bytes: headerBytes },
        attributes: { bytes: String(bytes), header_bytes: String(headerBytes) },
        headers: none,
      };
    }
    const backends = ctx.deps.backends;
    let r: reputation.VerifyMessageResponse;
    try {
      r = await backends.stream(
        'reputation',
        backends.reputation.verifyMessage,
        pieces(ctx.session, ctx.input.message),
        settings.timeoutMs,
      );
    } catch (err) {
      if (!(err instanceof BackendError)) throw err;
      const refuse = settings.failureMode === 'fail-closed';
      return {
        outcome: 'error',
        reason: 'dmarc.error',
        vars: { error: err.message },
        attributes: { error: err.message, failure_mode: settings.failureMode },
        refuse,
        headers: refuse ? undefined : none,
      };
    }
    const v = applyVerdict(r.verdict, REASONS, { fails: ['dmarc.fail', 'dmarc.quarantine'] });
    return {
      ...v,
      attributes: { dkim: r.dkim, spf: r.spf, arc: r.arc, dmarc: r.dmarc, policy: r.dmarcPolicy },
    };
  },
});
