import { context, trace } from '@opentelemetry/api';
import type { Config } from '@smtpguard/config';
import type { DecisionRecorder, Outcome, PhaseName } from '@smtpguard/decisions';
import { BackendError } from '@smtpguard/grpc-kit';
import type { Logger } from '@smtpguard/logging';
import { type ReasonCode, type Reply, reason, render, replyFor, type Vars } from '@smtpguard/reasons';
import { tracesExported, withSpan } from '@smtpguard/telemetry';
import { type Session, sessionContext, sessionVars } from '../session.js';
import type { Check, CheckContext, EngineDeps, Phase, PhaseInputs, Verdict } from './check.js';
import { ReplyError } from './reply.js';

export type PhaseLists = { [P in Phase]: ReadonlyArray<Check<P>> };

/** Which decision a reply belongs to, besides the session. */
export interface DecisionScope {
  recipient?: string;
  messageId?: string;
}

/**
 * Runs the declared checks of a phase in order and owns what they share: the span, the decision (an event
 * and a log line), the refusal reply from the catalog, the check's failure mode when its backend fails, and
 * latency. A refusal ends the phase by throwing a ReplyError, which the SMTP layer sends.
 */
export class Runner {
  constructor(
    private readonly phases: PhaseLists,
    private readonly deps: EngineDeps,
    private readonly decisions: DecisionRecorder,
    private readonly logger: Logger,
  ) {}

  /** The context a phase's checks see. */
  context<P extends Phase>(
    phase: P,
    cfg: Config,
    session: Session,
    input: PhaseInputs[P],
    rcpt?: CheckContext<P>['rcpt'],
  ): CheckContext<P> {
    void phase;
    return { cfg, session, deps: this.deps, input, tx: session.tx, rcpt } as CheckContext<P>;
  }

  /**
   * Runs a phase; resolves with the verdicts recorded, throws ReplyError when a check refuses. The checks run in
   * the session's trace context (a backend call carries it); with spans exported each check has its own span
   * below the session's, otherwise the phase enters the session's context once for all its checks.
   */
  run<P extends Phase>(phase: P, ctx: CheckContext<P>, scope: DecisionScope = {}): Promise<Verdict[]> {
    const session = ctx.session.ctx;
    if (tracesExported() || !session || context.active() === session) return this.runPhase(phase, ctx, scope);
    return context.with(session, () => this.runPhase(phase, ctx, scope));
  }

  private async runPhase<P extends Phase>(
    phase: P,
    ctx: CheckContext<P>,
    scope: DecisionScope,
  ): Promise<Verdict[]> {
    const verdicts: Verdict[] = [];
    for (const check of this.phases[phase] as ReadonlyArray<Check<P>>) {
      if (check.enabled && !check.enabled(ctx)) continue;
      if (check.background) {
        this.runOne(check, ctx, scope).catch((err: unknown) =>
          this.logger.error({ check: check.name, err: (err as Error).stack }, 'background check failed'),
        );
        continue;
      }
      const v = await this.runOne(check, ctx, scope);
      if (v) verdicts.push(v);
    }
    return verdicts;
  }

  private async runOne<P extends Phase>(
    check: Check<P>,
    ctx: CheckContext<P>,
    scope: DecisionScope,
  ): Promise<Verdict | undefined> {
    const started = performance.now();
    const v = tracesExported()
      ? await withSpan(
          `${check.phase} ${check.name}`,
          {
            'smtpguard.check': check.name,
            'smtpguard.session': ctx.session.id,
            // The transaction so far (undefined attributes are left out): its sender and recipients accepted.
            'smtp.mail_from': ctx.session.tx?.sender,
            'smtp.rcpt_count': ctx.session.tx?.recipients.length,
          },
          async (span) => {
            const verdict = await this.verdictOf(check, ctx);
            if (verdict)
              span.setAttributes({
                'smtpguard.outcome': verdict.outcome,
                'smtpguard.reason': verdict.reason,
              });
            return verdict;
          },
          {
            parent: ctx.session.span ? trace.setSpan(context.active(), ctx.session.span) : context.active(),
          },
        )
      : await this.verdictOf(check, ctx);
    if (!v) return undefined;
    if (!(check.reasons as readonly string[]).includes(v.reason)) {
      throw new Error(`check ${check.name} returned reason ${v.reason}, which it does not declare`);
    }
    if (v.headers?.length && ctx.session.tx) {
      // Header fields are values from the outside (DNS, other servers): one line each.
      for (const h of v.headers) ctx.session.tx.headers.push(h.replace(/[\r\n]+/g, ' '));
    }
    const reply = this.decide(ctx.session, check.phase, check.name, v, scope, performance.now() - started);
    if (reply) throw new ReplyError(reply, v.reason, Boolean(v.close));
    return v;
  }

  /** The check's verdict; a backend failure becomes the check's failure-mode verdict when it declares one. */
  private async verdictOf<P extends Phase>(
    check: Check<P>,
    ctx: CheckContext<P>,
  ): Promise<Verdict | undefined> {
    try {
      return await check.run(ctx);
    } catch (err) {
      if (!(err instanceof BackendError) || !check.onBackendError) throw err;
      const mode = check.onBackendError.mode(ctx.cfg);
      return {
        outcome: 'error',
        reason: check.onBackendError.reason,
        refuse: mode === 'fail-closed',
        vars: { error: err.message },
        attributes: { error: err.message, failure_mode: mode },
      };
    }
  }

  /**
   * Records one decision and returns the reply it sends (refusals only). Used for the checks and for the
   * protocol layer's own replies (smtp-server's translated refusals, limits, timeouts), so that every
   * refusal is a decision with the same shape.
   */
  decide(
    session: Session,
    phase: PhaseName,
    check: string,
    v: Verdict,
    scope: DecisionScope = {},
    latencyMs = 0,
  ): Reply | undefined {
    const vars: Vars = {
      ...sessionVars(session),
      recipient: scope.recipient,
      message_id: scope.messageId,
      ...v.vars,
    };
    const reply = v.refuse ? replyFor(v.reason, vars, v.replyOverride) : undefined;
    const ctx = session.ctx ?? context.active();
    if (reply) {
      // The refusal on the session's span: the reply code (the last one sent) and an event per refusal.
      session.span?.setAttribute('smtp.reply.code', reply.code);
      session.span?.addEvent('smtp.refusal', {
        'smtp.reply.code': reply.code,
        'smtpguard.reason': v.reason,
        'smtpguard.check': check,
        'smtp.mail_from': session.tx?.sender,
        'smtp.rcpt_to': scope.recipient,
      });
    }
    this.decisions.record(
      {
        phase,
        check,
        outcome: v.outcome,
        reasonCode: v.reason,
        detail: render(reason(v.reason).happened, vars),
        reply,
        session: sessionContext(session),
        recipient: scope.recipient,
        messageId: scope.messageId,
        latencyMs,
        attributes: v.attributes && definedOnly(v.attributes),
      },
      ctx,
    );
    return reply;
  }

  /** A protocol-level refusal: decision + the catalog reply. */
  refuse(
    session: Session,
    phase: PhaseName,
    check: string,
    code: ReasonCode,
    vars: Vars = {},
    scope: DecisionScope = {},
  ): Reply {
    const outcome: Outcome = replyFor(code, {}).code >= 500 ? 'fail' : 'defer';
    return this.decide(session, phase, check, { outcome, reason: code, vars, refuse: true }, scope) as Reply;
  }
}

function definedOnly(attributes: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(attributes)) if (v !== undefined) out[k] = v;
  return out;
}
