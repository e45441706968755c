import { join } from 'node:path';
import { type Context, context, trace } from '@opentelemetry/api';
import { type LoadedConfig, natsServers } from '@smtpguard/config';
import { common, type events } from '@smtpguard/contracts';
import type { Logger } from '@smtpguard/logging';
import { smtpMetrics } from '@smtpguard/telemetry';
import { buildDecision, type DecisionInput } from './decision.js';
import { FileDecisionPublisher } from './file-publisher.js';
import { NatsDecisionPublisher, NatsUnavailableError } from './nats-publisher.js';
import { Outbox } from './outbox.js';
import type { DecisionPublisher } from './publisher.js';

export {
  buildDecision,
  DECISION_SUBJECTS,
  type DecisionInput,
  decisionSubject,
  type Outcome,
  type PhaseName,
} from './decision.js';
export { FileDecisionPublisher } from './file-publisher.js';
export { NatsDecisionPublisher, NatsUnavailableError } from './nats-publisher.js';
export { Outbox, type Pending } from './outbox.js';
export type { DecisionPublisher } from './publisher.js';
export { readDecisionFile, readDecisionStream, type StreamSource, type Window } from './reader.js';

/**
 * NATS JetStream when nats.url is set, the decisions file otherwise. With nats.onUnavailable=exit an
 * unreachable NATS throws NatsUnavailableError (the service exits non-zero with that message); with
 * "buffer" it logs the error, keeps serving and sends buffered decisions once NATS is back.
 */
export async function createDecisionPublisher(
  loaded: LoadedConfig,
  service: string,
  logger: Logger,
): Promise<DecisionPublisher> {
  const { nats, decisions, instance } = loaded.config;
  if (!nats.url) {
    const path = loaded.statePath(decisions.file);
    logger.info({ file: path }, 'decisions go to a JSON-lines file (no nats.url)');
    return new FileDecisionPublisher(path);
  }
  const publisher = new NatsDecisionPublisher({
    servers: natsServers(loaded.config),
    stream: nats.decisionStream,
    maxAgeSeconds: nats.decisionMaxAgeSeconds,
    replicas: nats.decisionReplicas,
    connectTimeoutMs: nats.connectTimeoutMs,
    outbox: new Outbox(
      loaded.statePath(join('decision-outbox', `${service}-${instance}.jsonl`)),
      nats.outboxMaxBytes,
    ),
    name: `${service}@${instance}`,
    logger,
  });
  try {
    await publisher.start();
    logger.info({ url: nats.url, stream: nats.decisionStream }, 'publishing decisions to NATS JetStream');
  } catch (err) {
    if (!(err instanceof NatsUnavailableError) || nats.onUnavailable === 'exit') throw err;
    logger.error(
      { err: err.message, outbox: publisher.stats().outbox },
      'NATS unreachable; serving anyway, decisions wait in the outbox until it is back (nats.onUnavailable=buffer)',
    );
    publisher.startInBackground();
  }
  return publisher;
}

/**
 * Logs and publishes each decision of a service, stamped with the trace id of its context. The log line is
 * structured for Loki and the like: `event: "decision"`, the reason code, the reply code, the session and the
 * decision's trace id (`trace_id`, also when the line is written outside the session's span); refusals
 * (fail, defer) at info, errors at warn, the rest at debug.
 */
export class DecisionRecorder {
  constructor(
    readonly service: string,
    private readonly publisher: DecisionPublisher,
    private readonly logger: Logger,
  ) {}

  record(input: DecisionInput, ctx: Context = context.active()): events.Decision {
    const traceId = trace.getSpanContext(ctx)?.traceId ?? '';
    const d = buildDecision(this.service, input, traceId);
    // Into the outbox journal first: a decision that was logged is one that will be published, even when the
    // process is killed right after the log line.
    this.publisher.publish(d, ctx);
    smtpMetrics.decision({
      service: this.service,
      phase: input.phase,
      check: input.check,
      outcome: input.outcome,
      reason: input.reasonCode,
      latencyMs: input.latencyMs,
      replyCode: input.reply?.code,
    });
    const level =
      input.phase === 'admin'
        ? 'info'
        : input.outcome === 'pass' || input.outcome === 'skip'
          ? 'debug'
          : input.outcome === 'error'
            ? 'warn'
            : 'info';
    if (this.logger.isLevelEnabled(level)) {
      this.logger[level](
        {
          event: 'decision',
          decision: d.id,
          trace_id: traceId || undefined,
          session: input.session.sessionId,
          phase: input.phase,
          check: input.check,
          outcome: input.outcome,
          reason: input.reasonCode,
          client_ip: input.session.clientIp,
          sender: input.session.sender || undefined,
          recipient: input.recipient,
          reply: input.reply ? `${input.reply.code} ${input.reply.enhanced} ${input.reply.text}` : undefined,
          reply_code: input.reply?.code,
          latency_ms: input.latencyMs,
          ...input.attributes,
        },
        input.detail ?? 'decision',
      );
    }
    return d;
  }

  /**
   * An administrator's change (phase admin, outcome pass), with the operator's name and what changed in the
   * attributes; `detail` is the reason's text with these values filled in.
   */
  admin(
    reasonCode: string,
    operator: string,
    attributes: Record<string, string>,
    detail: string,
  ): events.Decision {
    return this.record({
      phase: 'admin',
      check: 'admin',
      outcome: 'pass',
      reasonCode,
      detail,
      session: common.SessionContext.fromPartial({}),
      attributes: { operator, ...attributes },
    });
  }

  close(): Promise<void> {
    return this.publisher.close();
  }
}
