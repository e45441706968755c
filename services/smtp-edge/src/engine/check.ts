import type { Readable } from 'node:stream';
import type { Config, FailureMode } from '@smtpguard/config';
import type { Outcome, PhaseName } from '@smtpguard/decisions';
import type { ClientRules } from '@smtpguard/networks';
import type { ReasonCode, Vars } from '@smtpguard/reasons';
import type { Backends } from '../backends.js';
import type { LookupCaches } from '../cache/lookups.js';
import type { DataFacts } from '../data/inspector.js';
import type { NextHop } from '../delivery/next-hop.js';
import type { Params, RecipientState, Session, Transaction } from '../session.js';
import type { ConnectionTracker } from '../smtp/limits.js';

/** The phases a check can belong to, in the order of an SMTP session. */
export type Phase = Exclude<PhaseName, 'protocol' | 'admin'>;

/** What a check concluded. */
export interface Verdict<R extends ReasonCode = ReasonCode> {
  outcome: Outcome;
  reason: R;
  /** Values for the reason's texts ({zone}, {max}, ...); the session's values are added by the runner. */
  vars?: Vars;
  /** Check-specific facts for the decision (zone, triplet, error, ...). */
  attributes?: Record<string, string | undefined>;
  /** Send the reason's reply to the client and end the phase. */
  refuse?: boolean;
  /**
   * Another server's code and enhanced code passed on (the next hop's answer), within the reply's class; or
   * the administrator's own code and text for this refusal (a DNS list's replyCode/replyText).
   */
  replyOverride?: { code?: number; enhanced?: string; text?: string };
  /** Close the connection after the reply (a 421 closes anyway). */
  close?: boolean;
  /** Header fields the message gets when it is handed over (e.g. "Authentication-Results: ..."; no CRLF). */
  headers?: string[];
}

/** What each phase gives its checks besides the session. */
export interface PhaseInputs {
  connect: Record<string, never>;
  helo: { command: 'HELO' | 'EHLO'; arg: string };
  auth: { mechanism: string; username: string; password: string; authzid: string };
  mail: { address: string; params: Params };
  rcpt: { address: string; params: Params };
  data: { facts: DataFacts; message: MessageBody };
  queue: {
    nextHop: string;
    /** The trace headers the edge adds (Received, X-Greylist), CRLF-terminated; checks' headers go above. */
    head: string;
    message: MessageBody;
    /** Keeping the message while it arrived failed (the buffer file could not be written). */
    bufferError?: Error;
  };
}

/** The message as received (after normalization), readable again from the start. */
export interface MessageBody {
  /** Octets. */
  readonly size: number;
  reader(): Readable;
}

/** The edge's shared parts that checks use. */
export interface EngineDeps {
  backends: Backends;
  nextHop: () => NextHop;
  /** edge.trustedNetworks, compiled (IP rules match at connect, host names on the verified reverse name). */
  trusted: () => ClientRules;
  connections: ConnectionTracker;
  /** The services' answers the edge keeps (edge.cache); a new set after each config reload. */
  caches: () => LookupCaches;
}

export interface CheckContext<P extends Phase = Phase> {
  cfg: Config;
  session: Session;
  deps: EngineDeps;
  input: PhaseInputs[P];
  /** The transaction (from MAIL FROM on). */
  tx: P extends 'mail' | 'rcpt' | 'data' | 'queue' ? Transaction : undefined;
  /** The recipient being checked (RCPT only). */
  rcpt: P extends 'rcpt' ? RecipientState : undefined;
}

/**
 * One check: a small module in a phase's declared list (engine/phases.ts). The runner owns what every check
 * shares: its span, its decision and log line, the refusal reply from the catalog, the failure mode when its
 * backend fails, and latency. `run` returns undefined when it has nothing to record (a hygiene check that
 * passed).
 */
export interface Check<P extends Phase = Phase, R extends ReasonCode = ReasonCode> {
  /** Name in decisions, logs and spans ("relay", "greylist", ...). */
  name: string;
  phase: P;
  /** Every reason code the check can produce (a test compares them with the catalog). */
  reasons: readonly R[];
  /** The configuration keys the check reads, for the docs. */
  settings: readonly string[];
  /** Started without waiting (connect only): the phase goes on; the decision is recorded when it is done. */
  background?: boolean;
  /** False: the check does not run and records nothing. */
  enabled?(ctx: CheckContext<P>): boolean;
  /**
   * DATA checks: whether the facts gathered so far already decide a refusal. Asked while the message
   * streams in; once a check says yes, nothing more of the message is kept or forwarded.
   */
  violated?(facts: DataFacts, cfg: Config): boolean;
  /** A backend call failed (BackendError): the decision's reason, and the configured failure mode. */
  onBackendError?: { reason: R; mode(cfg: Config): FailureMode };
  run(ctx: CheckContext<P>): Promise<Verdict<R> | undefined> | Verdict<R> | undefined;
}

/** Declares a check; the reasons it returns are typed by the ones it lists. */
export function defineCheck<P extends Phase, const R extends ReasonCode>(check: Check<P, R>): Check<P, R> {
  return check;
}
