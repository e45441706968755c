import type { Socket } from 'node:net';
import type { Config } from '@smtpguard/config';
import type { PhaseName } from '@smtpguard/decisions';
import type { Logger } from '@smtpguard/logging';
import { type ReasonCode, type Reply, replyFor, type Vars } from '@smtpguard/reasons';
import { smtpMetrics } from '@smtpguard/telemetry';
import type {
  SMTPServer,
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerDataStream,
} from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { DataFacts } from '../data/inspector.js';
import { MessageBuffer } from '../data/message-buffer.js';
import { receiveMessage } from '../data/receiver.js';
import { messageDate, receivedHeader } from '../delivery/message.js';
import type { NextHop } from '../delivery/next-hop.js';
import type { Phase } from '../engine/check.js';
import { isReplyError, OWN_REPLY, ownText, ReplyError, wireText } from '../engine/reply.js';
import type { Runner } from '../engine/runner.js';
import { type Params, RecipientState, type Session, sessionVars } from '../session.js';
import { classify, HTTP_REQUEST, NEEDS_HELO } from './commands.js';
import { nativeRule } from './native-replies.js';

/** What a connection needs from the edge that holds it. */
export interface EdgeHost {
  cfg(): Config;
  readonly runner: Runner;
  readonly logger: Logger;
  readonly shuttingDown: boolean;
  nextHop(): NextHop;
  /** The client passed the pregreet test recently (greeted without delay). */
  pregreetPassed(ip: string): boolean;
  pregreetPass(ip: string, seconds: number): void;
  /** Where messages larger than edge.messageMemoryBytes are kept while they arrive. */
  readonly bufferDir: string;
  /** Whether the listener has a certificate (STARTTLS offered, or implicit TLS). */
  tlsOffered(listener: Session['listener']): boolean;
  /** The DATA checks' early verdict on the facts so far. */
  dataViolated(facts: DataFacts, cfg: Config): boolean;
  /** The connection closed. */
  forget(conn: EdgeConnection): void;
}

const PHASE_OF_VERB: Record<string, Phase> = {
  HELO: 'helo',
  EHLO: 'helo',
  AUTH: 'auth',
  MAIL: 'mail',
  RCPT: 'rcpt',
  DATA: 'data',
};

// How often the transfer rate of a message is looked at (edge.timeouts.minDataBytesPerSecond).
const RATE_CHECK_MS = 1_000;

const params = (a: SMTPServerAddress): Params => (a.args ? (a.args as Params) : {});

// PROXY protocol v1 ("PROXY ...") or v2 (its binary signature) at the start of a connection.
const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const isProxyHeader = (chunk: Buffer) =>
  chunk.subarray(0, 6).toString('latin1') === 'PROXY ' || chunk.subarray(0, 12).equals(V2_SIGNATURE);

/**
 * One SMTP connection: smtp-server's SMTPConnection (pinned at 3.21.6) with the edge in charge of the parts a
 * mail administrator sets. Every reply goes through send(), where the edge's own replies pass as they are and
 * smtp-server's are translated into catalog replies (with a decision for each refusal); _onCommand screens
 * commands first (line limits, allowed commands, sequence, shutdown, error tarpit); init() runs the greeting
 * delay (pregreet test) instead of smtp-server's fixed 100 ms; timers bound each command and each message.
 * `smtp-connection.contract.test.ts` fails when the pinned internals this relies on change.
 */
export class EdgeConnection extends SMTPConnection {
  /** The verb being answered ("AUTH" for the lines of an AUTH exchange) and its line (never AUTH data). */
  private current = { verb: '', line: '' };
  private commandTimer: NodeJS.Timeout | undefined;
  private dataTimer: NodeJS.Timeout | undefined;
  private rateTimer: NodeJS.Timeout | undefined;
  private dataStartedAt = 0;
  /** Bytes arrived since the last reply (a command being trickled in). */
  private bytesSinceReply = false;
  private greeted = false;
  /** A reply that closes the connection was sent and recorded. */
  private closingDecided = false;
  /** Between the end of the message and its reply: the next hop is being given the message. */
  private committing = false;
  private receiving = false;
  private shutdownPending = false;
  private lastRecipient = '';

  constructor(
    server: SMTPServer,
    socket: Socket,
    options: SMTPConnectionOptions,
    readonly state: Session,
    private readonly host: EdgeHost,
  ) {
    super(server, socket, options);
  }

  // --- connection start: the greeting delay (pregreet test) ---------------------------------------

  override init(): void {
    this._setListeners(() => {
      this.watchBytes();
      const l = this.host.cfg().edge.listeners[this.state.listener];
      const delay = l.greetingDelayMs;
      if (delay <= 0 || this.host.pregreetPassed(this.state.clientIp)) return this.ready();
      const started = Date.now();
      const onEarly = (chunk: Buffer) => {
        clearTimeout(timer);
        if (isProxyHeader(chunk)) this.proxyUntrusted();
        else this.earlyTalker(Date.now() - started, delay);
      };
      const timer = setTimeout(() => {
        this._socket.off('data', onEarly);
        if (this._closing || this._closed) return;
        this.host.pregreetPass(this.state.clientIp, l.pregreetPassSeconds);
        this.ready();
      }, delay);
      timer.unref();
      this._socket.once('data', onEarly);
    });
  }

  private ready(): void {
    this.greeted = true;
    this.connectionReady();
  }

  private earlyTalker(afterMs: number, delayMs: number): void {
    if (this.greeted || this.closingDecided) return;
    this.refuseAndClose('connect', 'pregreet', 'connect.early_talker', {
      after_ms: afterMs,
      delay_ms: delayMs,
    });
  }

  /** A PROXY header from a peer that is not a trusted load balancer: it claims to speak for another address. */
  private proxyUntrusted(): void {
    if (this.closingDecided) return;
    this.refuseAndClose('connect', 'proxy-protocol', 'connect.proxy_untrusted', {});
  }

  /** Notes bytes arriving while a command is awaited (slow clients trickle; the timer is not extended). */
  private watchBytes(): void {
    this._socket.on('data', () => {
      this.bytesSinceReply = true;
    });
  }

  // --- every reply -----------------------------------------------------------------------------

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    if (typeof data === 'string' && data.startsWith(OWN_REPLY)) {
      this.write(code, data.slice(OWN_REPLY.length));
      return;
    }
    void context;
    this.translate(code, data);
  }

  /** One of the edge's replies. */
  reply(reply: Reply): void {
    this.send(reply.code, ownText(reply));
  }

  /** smtp-server's own reply, in the catalog's words; a refusal becomes a decision. */
  private translate(code: number, data: string | string[] | null | undefined): void {
    const vars: Vars = { ...sessionVars(this.state), command: this.current.verb };
    // Challenges of an AUTH exchange are protocol data (base64), not words.
    if (code === 334) {
      this.write(code, Array.isArray(data) ? data.join(' ') : (data ?? ''));
      return;
    }
    if (code === 250 && (this.current.verb === 'EHLO' || this.current.verb === 'HELO')) {
      const lines = Array.isArray(data) ? data : [data ?? ''];
      const first = replyFor('helo.ok', vars).text;
      this.write(code, [first, ...lines.slice(1).filter((f) => this.offered(f))]);
      return;
    }
    const text = Array.isArray(data) ? data.join(' ') : (data ?? '');
    if (code === 250 && text === 'Accepted') {
      const reason = this.current.verb === 'RCPT' ? 'rcpt.accepted' : 'mail.accepted';
      this.write(code, wireText(replyFor(reason, { ...vars, recipient: this.lastRecipient })));
      return;
    }
    const found = nativeRule(code, text);
    if (!found) {
      this.host.logger.error(
        { code, text, command: this.current.verb },
        'smtp-server reply not in the catalog map',
      );
      const r = this.host.runner.refuse(this.state, 'protocol', 'smtp', 'protocol.internal_error', {
        command: this.current.verb,
        error: `unmapped reply ${code} ${text}`,
      });
      this.write(r.code, wireText(r));
      return;
    }
    const { rule, match } = found;
    const ruleVars = { ...vars, ...rule.vars?.(match, this.current.line) };
    const catalogReply = replyFor(rule.reason, ruleVars);
    if (catalogReply.code < 400) {
      this.write(catalogReply.code, wireText(catalogReply));
      return;
    }
    const phase = rule.phase ?? this.phase();
    const r = this.host.runner.refuse(this.state, phase, 'smtp', rule.reason, ruleVars, this.scope());
    if (rule.reason === 'connect.early_talker') {
      this.closingDecided = true;
      this.write(r.code, wireText(r));
      this.close();
      return;
    }
    this.write(r.code, wireText(r));
  }

  /** EHLO keywords as offered: AUTH only where it can be used. */
  private offered(keyword: string): boolean {
    if (!keyword.startsWith('AUTH ')) return true;
    return this.authUsable(this.host.cfg());
  }

  /**
   * AUTH sends a password: only inside TLS, on a listener bound to loopback, or with edge.allowInsecureAuth (TLS
   * ends at a trusted proxy in front of the edge).
   */
  private authUsable(cfg: Config): boolean {
    if (this.secure || cfg.edge.allowInsecureAuth) return true;
    const host = cfg.edge.listeners[this.state.listener].host;
    return host === 'localhost' || host === '::1' || host.startsWith('127.');
  }

  /** Writes a reply (text with its enhanced code) and keeps the session's books: errors, timers. */
  private write(code: number, text: string | string[]): void {
    if (this._closed) return;
    if (code === 421) this.closingDecided = true;
    super.send(code, text, false);
    if (this._closing || this._closed) {
      this.clearTimers();
      return;
    }
    if (code >= 500 && this.greeted) {
      this.state.errors += 1;
      const max = this.host.cfg().edge.limits.maxErrors;
      if (max > 0 && this.state.errors >= max) {
        const r = this.host.runner.refuse(this.state, 'protocol', 'error-limit', 'protocol.too_many_errors', {
          errors: this.state.errors,
        });
        this.write(r.code, wireText(r));
        return;
      }
    }
    if (code === 354) this.startDataTimers();
    else this.armCommandTimer();
  }

  private refuseAndClose(phase: PhaseName, check: string, reason: ReasonCode, vars: Vars): void {
    const r = this.host.runner.refuse(this.state, phase, check, reason, vars, this.scope());
    this.closingDecided = true;
    this.write(r.code, wireText(r));
    if (!this._closing) this.close();
  }

  private phase(): PhaseName {
    return PHASE_OF_VERB[this.current.verb] ?? 'protocol';
  }

  private scope() {
    return {
      recipient: this.current.verb === 'RCPT' ? this.lastRecipient : undefined,
      messageId: this.current.verb === 'DATA' ? this.state.tx?.messageId : undefined,
    };
  }

  // --- timers ----------------------------------------------------------------------------------

  private armCommandTimer(): void {
    clearTimeout(this.commandTimer);
    this.bytesSinceReply = false;
    const ms = this.host.cfg().edge.timeouts.commandMs;
    this.commandTimer = setTimeout(() => {
      if (this._closing || this._closed) return;
      const reason = this.bytesSinceReply ? 'protocol.command_timeout' : 'protocol.idle_timeout';
      this.refuseAndClose('protocol', 'timeout', reason, { seconds: Math.round(ms / 1000) });
    }, ms);
    this.commandTimer.unref();
  }

  private startDataTimers(): void {
    clearTimeout(this.commandTimer);
    const t = this.host.cfg().edge.timeouts;
    this.dataStartedAt = Date.now();
    this.dataTimer = setTimeout(() => {
      const bytes = this._parser ? this._parser.dataBytes : 0;
      this.refuseAndClose('data', 'timeout', 'data.timeout', { seconds: Math.round(t.dataMs / 1000), bytes });
    }, t.dataMs);
    this.dataTimer.unref();
    if (t.minDataBytesPerSecond > 0) {
      const check = () => this.checkRate(t.minDataBytesPerSecond, t.minDataRateAfterMs);
      this.rateTimer = setInterval(check, Math.min(RATE_CHECK_MS, t.minDataRateAfterMs));
      this.rateTimer.unref();
    }
  }

  private checkRate(minRate: number, afterMs: number): void {
    const elapsed = Date.now() - this.dataStartedAt;
    if (elapsed < afterMs || !this._parser || !this._parser._dataMode) return;
    const bytes = this._parser.dataBytes;
    const rate = Math.floor(bytes / (elapsed / 1000));
    if (rate >= minRate) return;
    this.refuseAndClose('data', 'transfer-rate', 'data.too_slow', {
      bytes,
      seconds: Math.round(elapsed / 1000),
      rate,
      min_rate: minRate,
    });
  }

  private stopDataTimers(): void {
    clearTimeout(this.dataTimer);
    clearInterval(this.rateTimer);
  }

  private clearTimers(): void {
    clearTimeout(this.commandTimer);
    this.stopDataTimers();
  }

  // --- commands --------------------------------------------------------------------------------

  override _onCommand(command: Buffer, callback?: () => void): void {
    clearTimeout(this.commandTimer);
    const next = callback ?? (() => undefined);
    if (this._upgrading || this._closing || !this._ready) {
      super._onCommand(command, callback);
      return;
    }
    const cfg = this.host.cfg();
    const inAuth = Boolean(this._nextHandler);
    const line = inAuth ? '' : command.toString();
    const verb = inAuth ? 'AUTH' : (line.trim().split(/\s+/)[0] ?? '').toUpperCase();
    this.current = {
      verb,
      line: verb === 'AUTH' ? `AUTH ${line.trim().split(/\s+/)[1] ?? ''}`.trim() : line,
    };
    const max = verb === 'AUTH' ? cfg.edge.limits.authLineOctets : cfg.edge.limits.commandLineOctets;
    if (command.length + 2 > max) {
      this.refuseCommand(
        'protocol',
        'protocol.line_too_long',
        { limit: max, length: command.length + 2 },
        next,
      );
      return;
    }
    if (!inAuth) {
      if (verb === 'PROXY') {
        this.proxyUntrusted();
        return;
      }
      if (HTTP_REQUEST.test(line)) {
        super._onCommand(command, callback);
        return;
      }
      if (this.host.shuttingDown && !this.state.tx && verb !== 'QUIT') {
        this.shutdown('before a new transaction');
        return;
      }
      const refusal = this.screen(verb, line, cfg);
      if (refusal) {
        this.refuseCommand(refusal.phase, refusal.reason, refusal.vars, next);
        return;
      }
    }
    const l = cfg.edge.limits;
    if (l.errorDelayMs > 0 && this.state.errors >= l.errorDelayAfter) {
      setTimeout(() => {
        if (!this._closing && !this._closed) super._onCommand(command, callback);
      }, l.errorDelayMs).unref();
      return;
    }
    super._onCommand(command, callback);
  }

  /** The edge's own command checks, before smtp-server handles the command. */
  private screen(
    verb: string,
    line: string,
    cfg: Config,
  ): { phase: PhaseName; reason: ReasonCode; vars: Vars } | undefined {
    const printable = verb.replace(/[^\x21-\x7e]/g, '?').slice(0, 32);
    switch (classify(verb)) {
      case 'unknown':
        return { phase: 'protocol', reason: 'protocol.unknown_command', vars: { command: printable } };
      case 'disallowed':
        return { phase: 'protocol', reason: 'protocol.command_disallowed', vars: { command: verb } };
      case 'not-implemented':
        return { phase: 'protocol', reason: 'protocol.not_implemented', vars: { command: verb } };
      case 'optional':
        if (!(cfg.edge.protocol.allowedCommands as string[]).includes(verb)) {
          return { phase: 'protocol', reason: 'protocol.command_disallowed', vars: { command: verb } };
        }
        break;
      case 'core':
        break;
    }
    if (NEEDS_HELO.has(verb) && !this.state.helo) {
      return { phase: 'protocol', reason: 'protocol.helo_required', vars: { command: verb } };
    }
    if (verb === 'AUTH') {
      const mechanism = line.trim().split(/\s+/)[1];
      if (!mechanism) return { phase: 'auth', reason: 'auth.mechanism_missing', vars: {} };
      if (this.state.user) return { phase: 'auth', reason: 'auth.already_authenticated', vars: {} };
      if (this.state.tx) return { phase: 'auth', reason: 'auth.in_transaction', vars: {} };
      // Never a password in clear text, whether or not STARTTLS is offered (RFC 4954 4, RFC 3207).
      if (!this.authUsable(cfg)) return { phase: 'auth', reason: 'auth.tls_required', vars: {} };
    }
    if (verb === 'STARTTLS' && !this.secure && !this.host.tlsOffered(this.state.listener)) {
      return { phase: 'protocol', reason: 'protocol.tls_not_offered', vars: {} };
    }
    return undefined;
  }

  private refuseCommand(phase: PhaseName, reason: ReasonCode, vars: Vars, next: () => void): void {
    const r = this.host.runner.refuse(this.state, phase, 'protocol', reason, vars, this.scope());
    this.write(r.code, wireText(r));
    if (!this._closing) setImmediate(() => this._whenWritable(next));
  }

  override handler_EHLO(command: Buffer, callback: () => void): void {
    this.helo('EHLO', command, callback);
  }

  override handler_HELO(command: Buffer, callback: () => void): void {
    this.helo('HELO', command, callback);
  }

  /** HELO/EHLO: the helo checks, then smtp-server's handler (which answers with the extensions). */
  private helo(verb: 'HELO' | 'EHLO', command: Buffer, callback: () => void): void {
    const arg = command.toString().trim().slice(4).trim();
    // HELO/EHLO is also a reset (RFC 5321 4.1.4): the transaction ends whatever the checks say.
    this.state.endTransaction();
    this._resetSession();
    const runner = this.host.runner;
    const ctx = runner.context('helo', this.host.cfg(), this.state, { command: verb, arg });
    runner.run('helo', ctx).then(
      () => {
        this.state.helo = arg.toLowerCase();
        if (verb === 'EHLO') super.handler_EHLO(command, callback);
        else super.handler_HELO(command, callback);
      },
      (err: unknown) => this.failed(err, callback),
    );
  }

  override handler_RSET(command: Buffer, callback: () => void): void {
    this.state.endTransaction();
    super.handler_RSET(command, callback);
    this.afterTransaction();
  }

  override handler_VRFY(command: Buffer, callback: () => void): void {
    const arg = command.toString().trim().split(/\s+/)[1];
    if (!arg) {
      this.refuseCommand('protocol', 'protocol.bad_syntax', { usage: 'VRFY address' }, callback);
      return;
    }
    this.reply(replyFor('protocol.vrfy', sessionVars(this.state)));
    callback();
  }

  override handler_HELP(_command: Buffer, callback: () => void): void {
    const commands = this.host.cfg().edge.protocol.allowedCommands.join(' ');
    this.reply(replyFor('protocol.help', { ...sessionVars(this.state), commands }));
    callback();
  }

  /** A handler failed: its ReplyError is the reply; anything else is answered 451 and logged. */
  private failed(err: unknown, callback: () => void): void {
    if (isReplyError(err)) {
      this.reply(err.reply);
      if (err.close && !this._closing) this.close();
    } else {
      this.internalError(err);
    }
    callback();
  }

  private internalError(err: unknown): ReplyError {
    this.host.logger.error(
      { session: this.state.id, command: this.current.verb, err: (err as Error).stack ?? String(err) },
      'internal error in SMTP handler',
    );
    const r = this.host.runner.refuse(this.state, this.phase(), 'protocol', 'protocol.internal_error', {
      command: this.current.verb,
      error: (err as Error).message ?? String(err),
    });
    return new ReplyError(r, 'protocol.internal_error');
  }

  /** Turns a rejected phase into the error smtp-server sends (the catalog reply). */
  private asReply(err: unknown): ReplyError {
    return isReplyError(err) ? err : this.internalError(err);
  }

  // --- the transaction, through smtp-server's callbacks ------------------------------------------

  onAuth(auth: SMTPServerAuthentication, done: (err: Error | null, user?: string) => void): void {
    const runner = this.host.runner;
    // smtp-server gives SASL PLAIN's authorization identity as authzid (the authcid is the username).
    const authzid = (auth as SMTPServerAuthentication & { authzid?: string }).authzid ?? '';
    const input = {
      mechanism: auth.method,
      username: auth.username ?? '',
      password: auth.password ?? '',
      authzid,
    };
    runner.run('auth', runner.context('auth', this.host.cfg(), this.state, input)).then(
      () => done(null, this.state.user),
      (err: unknown) => done(this.asReply(err)),
    );
  }

  onMailFrom(address: SMTPServerAddress, done: (err?: Error | null) => void): void {
    const runner = this.host.runner;
    const p = params(address);
    this.state.beginTransaction(address.address, p);
    const ctx = runner.context('mail', this.host.cfg(), this.state, { address: address.address, params: p });
    runner.run('mail', ctx).then(
      () => {
        this.syncUser();
        done();
      },
      (err: unknown) => {
        this.state.endTransaction();
        this.syncUser();
        done(this.asReply(err));
      },
    );
  }

  onRcptTo(address: SMTPServerAddress, done: (err?: Error | null) => void): void {
    const tx = this.state.tx;
    this.lastRecipient = address.address;
    if (!tx) {
      const r = this.host.runner.refuse(this.state, 'rcpt', 'protocol', 'rcpt.need_mail', {});
      done(new ReplyError(r, 'rcpt.need_mail'));
      return;
    }
    // A recipient given twice is accepted once; the next hop is not offered it again.
    if (tx.recipients.some((r) => r.toLowerCase() === address.address.toLowerCase())) {
      done();
      return;
    }
    const runner = this.host.runner;
    const rcpt = new RecipientState(address.address, params(address));
    const ctx = runner.context(
      'rcpt',
      this.host.cfg(),
      this.state,
      { address: rcpt.address, params: rcpt.params },
      rcpt,
    );
    runner.run('rcpt', ctx, { recipient: rcpt.address }).then(
      () => {
        tx.recipients.push(rcpt.address);
        done();
      },
      (err: unknown) => done(this.asReply(err)),
    );
  }

  onData(stream: SMTPServerDataStream, done: (err?: Error | null, message?: string) => void): void {
    // smtp-server destroys the stream with an error when the client goes away; the receiver sees it.
    stream.on('error', () => undefined);
    this.receive(stream).then(
      (message) => done(null, message),
      (err: unknown) => done(this.asReply(err)),
    );
  }

  /** Receives the message (memory, or a file when large), runs the DATA checks, then hands it over. */
  private async receive(stream: SMTPServerDataStream): Promise<string> {
    const tx = this.state.tx;
    const cfg = this.host.cfg();
    if (!tx?.hop) {
      stream.resume();
      throw new Error('DATA without a transaction at the next hop');
    }
    const scope = { messageId: tx.messageId };
    const runner = this.host.runner;
    const message = new MessageBuffer(this.host.bufferDir, cfg.edge.messageMemoryBytes);
    let bufferError: Error | undefined;
    message.once('error', (err) => {
      bufferError = err;
    });
    this.receiving = true;
    try {
      let received: Awaited<ReturnType<typeof receiveMessage>>;
      try {
        received = await receiveMessage(stream, {
          sink: message,
          normalize: cfg.edge.protocol.bareLineEndings === 'normalize',
          violated: (facts) => this.host.dataViolated(facts, cfg),
        });
      } finally {
        this.receiving = false;
        this.stopDataTimers();
      }
      const { facts } = received;
      if (!facts.complete) {
        if (!this.closingDecided) {
          runner.decide(
            this.state,
            'data',
            'receive',
            { outcome: 'error', reason: 'data.aborted', vars: { bytes: facts.bytes } },
            scope,
          );
        }
        this.state.endTransaction();
        throw new Error('the client went away during DATA');
      }
      this.committing = true;
      await runner.run('data', runner.context('data', cfg, this.state, { facts, message }), scope);
      const verdicts = await runner.run(
        'queue',
        runner.context('queue', cfg, this.state, {
          nextHop: this.host.nextHop().describe(),
          head: this.traceHeaders(cfg),
          message,
          bufferError: received.kept
            ? undefined
            : (bufferError ?? new Error('the message was not kept whole')),
        }),
        scope,
      );
      // The next hop has the message: its side of the transaction is over and must not be aborted.
      tx.hop = undefined;
      this.state.errors = 0;
      smtpMetrics.messageAccepted(this.state.listener, message.size);
      this.state.span?.setAttributes({
        'smtp.mail_from': tx.sender,
        'smtp.rcpt_count': tx.recipients.length,
        'smtp.reply.code': 250,
        'smtpguard.message_id': tx.messageId,
      });
      const accepted = verdicts[verdicts.length - 1];
      const reply = replyFor('queue.accepted', {
        ...sessionVars(this.state),
        ...accepted?.vars,
        ...scope,
        message_id: tx.messageId,
      });
      return ownText(reply);
    } finally {
      this.committing = false;
      await message.dispose();
      this.state.endTransaction();
      this.afterTransaction();
    }
  }

  /** The Received header (RFC 5321 4.4) and, when recipients were greylisted, X-Greylist. */
  private traceHeaders(cfg: Config): string {
    const tx = this.state.tx;
    const received = receivedHeader({
      helo: this.state.helo,
      clientHostname: this.state.clientHostname,
      clientIp: this.state.clientIp,
      byHost: cfg.edge.hostname,
      protocol: this.session.transmissionType || 'ESMTP',
      id: tx?.messageId ?? '',
      recipients: tx?.recipients ?? [],
    });
    const delay = tx?.greylistDelay ?? 0;
    const grey =
      cfg.edge.checks.greylist.delayHeader && delay > 0
        ? `X-Greylist: delayed ${delay} seconds by smtpguard at ${cfg.edge.hostname}; ${messageDate()}\r\n`
        : '';
    return received + grey;
  }

  /** STARTTLS completed: RFC 3207 4.2, everything the client said before is forgotten. */
  onSecure(done: () => void): void {
    this.state.resetToGreeting();
    this.state.tls = true;
    this.watchBytes();
    done();
  }

  private syncUser(): void {
    if (!this.state.user) this.session.user = undefined;
  }

  // --- end of the session --------------------------------------------------------------------------

  /**
   * The edge is stopping. A session between transactions is answered 421 now; one in a transaction finishes
   * it first (or until the grace period ends, `force`), and one whose message is being handed to the next hop
   * always gets that answer before its 421, so no accepted message is answered 4xx.
   */
  shutdown(when: string, force = false): void {
    if (this._closing || this._closed) return;
    const busy = this.state.tx || this.receiving || this._handlerPending;
    if (this.committing || (busy && !force)) {
      this.shutdownPending = true;
      return;
    }
    this.refuseAndClose('protocol', 'shutdown', 'protocol.shutting_down', { when });
  }

  private afterTransaction(): void {
    if (this.shutdownPending || this.host.shuttingDown) {
      setImmediate(() => this.shutdown('after its transaction', true));
    }
  }

  /** Last resort at the end of a shutdown: the socket goes without a reply. */
  destroy(): void {
    this._socket.destroy();
  }

  /** smtp-server's onClose. */
  closed(): void {
    this.clearTimers();
    this.state.endTransaction();
    this.host.forget(this);
  }
}
