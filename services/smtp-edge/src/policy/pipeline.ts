import { context, trace } from '@opentelemetry/api';
import type { Config } from '@smtpguard/config';
import { auth, greylist, reputation } from '@smtpguard/contracts';
import type { DecisionRecorder, Outcome, PhaseName } from '@smtpguard/decisions';
import { BackendError } from '@smtpguard/grpc-kit';
import { NetworkList } from '@smtpguard/networks';
import { reason, render, replyFor, type Vars } from '@smtpguard/reasons';
import { withSpan } from '@smtpguard/telemetry';
import type { BackendName, Backends } from '../backends.js';
import { type DnsblVerdict, type EdgeSession, sessionContext, sessionVars } from '../session.js';
import { replyError } from '../smtp/replies.js';

/** What one check concluded. `refuse` sends the reason's catalog reply (4xx/5xx) to the client. */
export interface Verdict {
  outcome: Outcome;
  reason: string;
  vars?: Vars;
  attributes?: Record<string, string>;
  refuse?: boolean;
}

// RFC 5321 4.5.1: postmaster must be reachable; abuse by convention (RFC 2142). Exempt from DNSBL refusals.
const ALWAYS_REACHABLE = new Set(['postmaster', 'abuse']);

/**
 * The per-phase policy of the edge, Haraka-style: each check yields a Verdict, every Verdict becomes a
 * Decision (log line + event), and a refusing Verdict becomes the SMTP reply of its reason code. SMTP
 * wording comes only from the reason catalog.
 */
export class Policy {
  private trusted: NetworkList;

  constructor(
    private readonly cfg: () => Config,
    private readonly backends: Backends,
    private readonly decisions: DecisionRecorder,
  ) {
    this.trusted = Policy.trustedList(cfg());
  }

  private static trustedList(cfg: Config): NetworkList {
    try {
      return new NetworkList(cfg.edge.trustedNetworks);
    } catch (err) {
      throw new Error(`edge.trustedNetworks: ${(err as Error).message}`);
    }
  }

  /** Re-reads settings that are compiled (trusted networks); throws on a bad entry. */
  reload(): void {
    this.trusted = Policy.trustedList(this.cfg());
  }

  /** Runs one check inside its span, records its decision, and throws the reply when it refuses. */
  async decide(
    s: EdgeSession,
    phase: PhaseName,
    check: string,
    fn: () => Promise<Verdict>,
    extra: { recipient?: string; messageId?: string } = {},
  ): Promise<Verdict> {
    const started = performance.now();
    const spanCtx = trace.setSpan(context.active(), s.span);
    const v = await context.with(spanCtx, () =>
      withSpan(`${phase} ${check}`, { 'smtpguard.check': check, 'smtpguard.session': s.id }, async (span) => {
        const verdict = await fn();
        span.setAttributes({ 'smtpguard.outcome': verdict.outcome, 'smtpguard.reason': verdict.reason });
        return verdict;
      }),
    );
    const vars: Vars = {
      ...sessionVars(s),
      recipient: extra.recipient,
      message_id: extra.messageId,
      ...v.vars,
    };
    const reply = v.refuse ? replyFor(v.reason, vars) : undefined;
    this.decisions.record(
      {
        phase,
        check,
        outcome: v.outcome,
        reasonCode: v.reason,
        detail: render(reason(v.reason).happened, vars),
        reply,
        session: sessionContext(s),
        recipient: extra.recipient,
        messageId: extra.messageId,
        latencyMs: performance.now() - started,
        attributes: v.attributes,
      },
      spanCtx,
    );
    if (reply) throw replyError(reply);
    return v;
  }

  /** A failed backend call, turned into a verdict by the backend's failure mode. */
  private failure(name: BackendName, err: unknown, reasonCode: string): Verdict {
    const error = err instanceof BackendError ? err.message : String(err);
    const refuse = this.backends.settings(name).failureMode === 'fail-closed';
    return {
      outcome: 'error',
      reason: reasonCode,
      refuse,
      vars: { error },
      attributes: { error, failure_mode: this.backends.settings(name).failureMode },
    };
  }

  // --- connect ------------------------------------------------------------------------------

  /** Trusted networks, and the DNSBL lookup started now and awaited at RCPT (not delaying the banner). */
  connect(s: EdgeSession): void {
    s.trustedRule = this.trusted.match(s.clientIp) ?? '';
    if (s.trustedRule) return;
    s.dnsbl = this.lookupClient(s);
  }

  /**
   * reputation.CheckClient: DNS block and allow lists and FCrDNS. The verified host name and the allow-list
   * result feed greylisting; a block-list verdict is kept for RCPT (refused only if edge.checks.dnsbl.enabled).
   */
  private async lookupClient(s: EdgeSession): Promise<DnsblVerdict> {
    let verdict: DnsblVerdict = { kind: 'clean' };
    await this.decide(s, 'connect', 'dnsbl', async (): Promise<Verdict> => {
      try {
        const r = await this.backends.call('reputation', this.backends.reputation.checkClient, {
          session: sessionContext(s),
        });
        if (r.fcrdnsVerified) s.clientHostname = r.reverseHostname;
        s.dnswlListed = r.allowHits.length > 0;
        const hit = this.cfg().edge.checks.dnsbl.enabled ? r.blockHits[0] : undefined;
        if (hit) {
          verdict = { kind: 'listed', zone: hit.zone, answers: hit.answers.join(',') };
          return {
            outcome: 'fail',
            reason: 'dnsbl.listed',
            vars: { zone: hit.zone, answers: verdict.answers },
            attributes: { zone: hit.zone, answers: verdict.answers, txt: hit.txt },
          };
        }
        return {
          outcome: 'pass',
          reason: 'dnsbl.clean',
          vars: { zones: 'the configured zones' },
          attributes: r.failedZones.length ? { failed_zones: r.failedZones.join(',') } : {},
        };
      } catch (err) {
        const v = this.failure('reputation', err, 'dnsbl.error');
        verdict = { kind: 'error', refuse: Boolean(v.refuse), error: String(v.vars?.error) };
        // The refusal, if any, is delivered at RCPT like a listing.
        return { ...v, refuse: false };
      }
    });
    return verdict;
  }

  // --- auth ---------------------------------------------------------------------------------

  /** SMTP AUTH through the auth service. Returns the account on success; throws the reply otherwise. */
  async authenticate(s: EdgeSession, mechanism: string, username: string, password: string): Promise<string> {
    let account = '';
    await this.decide(s, 'auth', 'auth', async () => {
      const vars = { user: username, mechanism };
      try {
        const r = await this.backends.call('auth', this.backends.auth.authenticate, {
          session: sessionContext(s),
          mechanism,
          username,
          password,
          challenge: '',
          response: '',
        });
        if (r.result === auth.AuthResult.AUTH_RESULT_OK) {
          account = r.account;
          return { outcome: 'pass', reason: 'auth.ok', vars: { ...vars, user: r.account } };
        }
        return { outcome: 'fail', reason: r.reasonCode || 'auth.bad_credentials', vars, refuse: true };
      } catch (err) {
        // Authentication cannot fail open: a backend failure is always a temporary refusal.
        return {
          ...this.failure('auth', err, 'auth.unavailable'),
          vars: { ...vars, error: String(err instanceof Error ? err.message : err) },
          refuse: true,
        };
      }
    });
    return account;
  }

  // --- mail ---------------------------------------------------------------------------------

  async mailFrom(s: EdgeSession): Promise<void> {
    s.spfPassDomain = '';
    s.greylistDelay = 0;
    const listener = this.cfg().edge.listeners[s.listener];
    if (listener.requireAuth && !s.user && !s.trustedRule) {
      await this.decide(s, 'mail', 'submission', async () => ({
        outcome: 'fail',
        reason: 'submission.auth_required',
        refuse: true,
      }));
    }
    const spf = this.cfg().edge.checks.spf;
    if (spf.enabled && !s.user && !s.trustedRule) await this.spf(s, spf.rejectFail);
  }

  /** SPF of the sender for the client IP (reputation.CheckSender). Refuses a fail only with rejectFail. */
  private async spf(s: EdgeSession, rejectFail: boolean): Promise<void> {
    await this.decide(s, 'mail', 'spf', async (): Promise<Verdict> => {
      try {
        const r = await this.backends.call('reputation', this.backends.reputation.checkSender, {
          session: sessionContext(s),
        });
        const result = reputation.spfResultToJSON(r.spf).replace('SPF_RESULT_', '').toLowerCase();
        const vars = { domain: r.spfDomain, result, explanation: r.spfExplanation };
        const attributes = { result, domain: r.spfDomain };
        switch (r.spf) {
          case reputation.SpfResult.SPF_RESULT_PASS:
            s.spfPassDomain = r.spfDomain;
            return { outcome: 'pass', reason: 'spf.pass', vars, attributes };
          case reputation.SpfResult.SPF_RESULT_FAIL:
            return { outcome: 'fail', reason: 'spf.fail', vars, attributes, refuse: rejectFail };
          case reputation.SpfResult.SPF_RESULT_TEMPERROR:
          case reputation.SpfResult.SPF_RESULT_PERMERROR:
            return { outcome: 'error', reason: 'spf.error', vars, attributes };
          default:
            return { outcome: 'skip', reason: 'spf.not_pass', vars, attributes };
        }
      } catch (err) {
        // SPF only informs (unless rejectFail); a reputation outage never refuses the sender here.
        return { ...this.failure('reputation', err, 'spf.error'), refuse: false };
      }
    });
  }

  // --- rcpt ---------------------------------------------------------------------------------

  async rcptTo(s: EdgeSession, recipient: string): Promise<void> {
    const at = { recipient };
    const local = await this.resolveRecipient(s, recipient);
    if (!local) await this.decide(s, 'rcpt', 'relay', async () => this.relay(s), at);
    await this.dnsblAtRcpt(s, recipient);
    await this.greylist(s, recipient);
  }

  /** Directory lookup. True when the recipient is local; throws the reply for unknown/disabled ones. */
  private async resolveRecipient(s: EdgeSession, recipient: string): Promise<boolean> {
    let local = false;
    await this.decide(
      s,
      'rcpt',
      'recipient',
      async (): Promise<Verdict> => {
        let r: auth.ResolveRecipientResponse;
        try {
          r = await this.backends.call('auth', this.backends.auth.resolveRecipient, {
            session: sessionContext(s),
            address: recipient,
          });
        } catch (err) {
          const v = this.failure('auth', err, 'rcpt.lookup_unavailable');
          // fail-open may accept for authorized clients only: without the directory the recipient could be
          // remote, and accepting it from anyone would make an open relay.
          const authorized = Boolean(s.user || s.trustedRule);
          if (!v.refuse && authorized) local = true;
          return { ...v, refuse: v.refuse || !authorized };
        }
        const S = auth.RecipientStatus;
        const vars = { domain: r.domain, target: r.deliveryAddresses.join(', ') };
        switch (r.status) {
          case S.RECIPIENT_STATUS_MAILBOX:
          case S.RECIPIENT_STATUS_ALIAS:
          case S.RECIPIENT_STATUS_LIST:
            local = true;
            return {
              outcome: 'pass',
              reason: 'rcpt.local',
              vars: {
                ...vars,
                kind: auth.recipientStatusToJSON(r.status).replace('RECIPIENT_STATUS_', '').toLowerCase(),
              },
            };
          case S.RECIPIENT_STATUS_CATCH_ALL:
            local = true;
            return { outcome: 'pass', reason: 'rcpt.catch_all', vars };
          case S.RECIPIENT_STATUS_NOT_LOCAL:
            return { outcome: 'skip', reason: 'rcpt.not_local', vars };
          default:
            return { outcome: 'fail', reason: r.reasonCode, vars, refuse: true };
        }
      },
      { recipient },
    );
    return local;
  }

  private async relay(s: EdgeSession): Promise<Verdict> {
    const mode = this.cfg().edge.relay.mode;
    if (mode === 'open') return { outcome: 'pass', reason: 'relay.granted.open' };
    if (mode === 'closed') return { outcome: 'fail', reason: 'relay.closed', refuse: true };
    if (s.user) return { outcome: 'pass', reason: 'relay.granted.authenticated' };
    if (s.trustedRule)
      return { outcome: 'pass', reason: 'relay.granted.trusted_ip', vars: { rule: s.trustedRule } };
    return { outcome: 'fail', reason: 'relay.denied', refuse: true };
  }

  /** Delivers the verdict of the DNSBL lookup started at connect. */
  private async dnsblAtRcpt(s: EdgeSession, recipient: string): Promise<void> {
    if (!s.dnsbl || s.user) return;
    const verdict = await s.dnsbl;
    if (verdict.kind === 'clean' || (verdict.kind === 'error' && !verdict.refuse)) return;
    const localPart = recipient.split('@')[0]?.toLowerCase() ?? '';
    await this.decide(
      s,
      'rcpt',
      'dnsbl',
      async (): Promise<Verdict> => {
        if (verdict.kind === 'error') {
          return { outcome: 'error', reason: 'dnsbl.error', vars: { error: verdict.error }, refuse: true };
        }
        const vars = { zone: verdict.zone, answers: verdict.answers };
        if (ALWAYS_REACHABLE.has(localPart))
          return { outcome: 'skip', reason: 'dnsbl.exempt_recipient', vars };
        return {
          outcome: 'fail',
          reason: 'dnsbl.listed',
          vars,
          attributes: { zone: verdict.zone },
          refuse: true,
        };
      },
      { recipient },
    );
  }

  private async greylist(s: EdgeSession, recipient: string): Promise<void> {
    if (!this.cfg().edge.checks.greylist.enabled) return;
    await this.decide(
      s,
      'rcpt',
      'greylist',
      async (): Promise<Verdict> => {
        if (s.user || s.trustedRule) return { outcome: 'skip', reason: 'greylist.skipped_authenticated' };
        try {
          await s.dnsbl; // FCrDNS name and DNSWL result of the connect lookup
          const r = await this.backends.call('greylist', this.backends.greylist.check, {
            session: sessionContext(s),
            recipient,
            spfPassDomain: s.spfPassDomain,
            dnswlListed: s.dnswlListed,
          });
          s.greylistDelay = Math.max(s.greylistDelay, r.delayedSeconds);
          const vars = {
            triplet: r.tripletKey,
            retry_after: r.retryAfterSeconds,
            delayed: r.delayedSeconds,
            rule: r.whitelistRule,
          };
          const attributes = { triplet: r.tripletKey };
          if (r.action === greylist.Action.ACTION_DEFER) {
            return {
              outcome: 'defer',
              reason: r.reasonCode,
              vars,
              attributes: { ...attributes, retry_after: String(r.retryAfterSeconds) },
              refuse: true,
            };
          }
          const skipped =
            r.reasonCode === 'greylist.skipped_authenticated' ||
            r.reasonCode === 'greylist.disabled_for_recipient';
          const outcome = skipped ? 'skip' : 'pass';
          return { outcome, reason: r.reasonCode, vars, attributes };
        } catch (err) {
          return this.failure('greylist', err, 'greylist.unavailable');
        }
      },
      { recipient },
    );
  }
}
