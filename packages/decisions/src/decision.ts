import { randomUUID } from 'node:crypto';
import { type common, events } from '@smtpguard/contracts';

export type Outcome = 'pass' | 'fail' | 'defer' | 'skip' | 'error';
export type PhaseName =
  | 'connect'
  | 'helo'
  | 'auth'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'queue'
  | 'protocol'
  | 'admin';

const outcomes: Record<Outcome, events.Outcome> = {
  pass: events.Outcome.OUTCOME_PASS,
  fail: events.Outcome.OUTCOME_FAIL,
  defer: events.Outcome.OUTCOME_DEFER,
  skip: events.Outcome.OUTCOME_SKIP,
  error: events.Outcome.OUTCOME_ERROR,
};

const phases: Record<PhaseName, events.Phase> = {
  connect: events.Phase.PHASE_CONNECT,
  helo: events.Phase.PHASE_HELO,
  auth: events.Phase.PHASE_AUTH,
  mail: events.Phase.PHASE_MAIL,
  rcpt: events.Phase.PHASE_RCPT,
  data: events.Phase.PHASE_DATA,
  queue: events.Phase.PHASE_QUEUE,
  protocol: events.Phase.PHASE_PROTOCOL,
  admin: events.Phase.PHASE_ADMIN,
};

export interface DecisionInput {
  phase: PhaseName;
  check: string;
  outcome: Outcome;
  reasonCode: string;
  detail?: string;
  reply?: { code: number; enhanced: string; text: string } | undefined;
  session: common.SessionContext;
  recipient?: string;
  latencyMs?: number;
  attributes?: Record<string, string>;
  messageId?: string;
}

export function buildDecision(
  service: string,
  input: DecisionInput,
  traceId: string,
  now = new Date(),
): events.Decision {
  return events.Decision.fromPartial({
    id: randomUUID(),
    time: now,
    service,
    phase: phases[input.phase],
    check: input.check,
    outcome: outcomes[input.outcome],
    reasonCode: input.reasonCode,
    detail: input.detail ?? '',
    reply: input.reply
      ? { code: input.reply.code, enhancedCode: input.reply.enhanced, text: input.reply.text }
      : undefined,
    session: input.session,
    recipient: input.recipient ?? '',
    latencyMs: input.latencyMs ?? 0,
    traceId,
    attributes: input.attributes ?? {},
    messageId: input.messageId ?? '',
  });
}

/** smtpguard.decision.v1.<service>.<phase>: narrowest token last, so consumers can filter by phase. */
export function decisionSubject(d: events.Decision): string {
  const phase = events
    .phaseToJSON(d.phase)
    .replace(/^PHASE_/, '')
    .toLowerCase();
  return `smtpguard.decision.v1.${d.service}.${phase}`;
}

export const DECISION_SUBJECTS = 'smtpguard.decision.v1.>';
