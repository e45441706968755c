import type { AddressInfo } from 'node:net';
import type { ConfigHandle } from '@smtpguard/config';
import type { Logger } from '@smtpguard/logging';
import { context, startSpan, withSpan } from '@smtpguard/telemetry';
import {
  SMTPServer,
  type SMTPServerDataStream,
  type SMTPServerOptions,
  type SMTPServerSession,
} from 'smtp-server';
import { messageDate, readMessage, receivedHeader } from '../delivery/message.js';
import { DeliveryError, type NextHop, newMessageId } from '../delivery/next-hop.js';
import type { Policy, Verdict } from '../policy/pipeline.js';
import type { EdgeSession, ListenerName } from '../session.js';
import { replyError, type SmtpReplyError } from './replies.js';

export interface ListenAddress {
  listener: ListenerName;
  host: string;
  port: number;
}

const isReply = (err: unknown): err is SmtpReplyError =>
  err instanceof Error && typeof (err as SmtpReplyError).responseCode === 'number';

/** The SMTP listeners (MX and submission) on smtp-server, each phase handed to the Policy. */
export class Edge {
  private servers: Array<{ listener: ListenerName; server: SMTPServer }> = [];
  private sessions = new Map<string, EdgeSession>();

  constructor(
    private readonly config: ConfigHandle,
    private readonly policy: Policy,
    private readonly nextHop: () => NextHop,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<ListenAddress[]> {
    const out: ListenAddress[] = [];
    const { listeners } = this.config.current.config.edge;
    for (const name of ['mx', 'submission'] as const) {
      const l = listeners[name];
      if (!l.enabled) continue;
      const server = new SMTPServer(this.options(name));
      server.on('error', (err) =>
        this.logger.error({ listener: name, err: err.message }, 'SMTP listener error'),
      );
      await new Promise<void>((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(l.port, l.host, () => {
          server.server.off('error', reject);
          resolve();
        });
      });
      const port = (server.server.address() as AddressInfo).port;
      this.servers.push({ listener: name, server });
      out.push({ listener: name, host: l.host, port });
      this.logger.info({ listener: name, host: l.host, port, requireAuth: l.requireAuth }, 'SMTP listening');
    }
    return out;
  }

  /** Stops accepting; sessions get shutdownGraceMs to finish, then smtp-server answers 421 and closes. */
  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
  }

  private options(listener: ListenerName): SMTPServerOptions {
    const edge = this.config.current.config.edge;
    return {
      name: edge.hostname,
      banner: 'smtpguard ESMTP',
      hideENHANCEDSTATUSCODES: false,
      // AUTH is offered everywhere; where it is required (submission), the policy says so at MAIL FROM with
      // its own reason code, instead of smtp-server's generic refusal.
      authOptional: true,
      allowInsecureAuth: edge.allowInsecureAuth,
      authMethods: this.config.current.config.auth.mechanisms,
      size: edge.maxMessageBytes,
      socketTimeout: edge.socketTimeoutMs,
      closeTimeout: Math.max(edge.shutdownGraceMs, 1),
      disableReverseLookup: true,
      logger: false,
      onConnect: (session, cb) => this.guard(cb, async () => this.onConnect(listener, session)),
      onAuth: (auth, session, cb) =>
        this.guard(
          (err) => cb(err, undefined),
          async () => {
            const s = this.session(session);
            const account = await this.policy.authenticate(
              s,
              auth.method,
              auth.username ?? '',
              auth.password ?? '',
            );
            s.user = account;
            cb(null, { user: account });
          },
          true,
        ),
      onMailFrom: (address, session, cb) =>
        this.guard(cb, async () => {
          const s = this.session(session);
          s.helo = session.hostNameAppearsAs || '';
          s.tls = session.secure;
          s.sender = address.address;
          s.transactionCount += 1;
          s.transactionId = `${s.id}.${s.transactionCount}`;
          await this.policy.mailFrom(s);
        }),
      onRcptTo: (address, session, cb) =>
        this.guard(cb, async () => {
          const s = this.session(session);
          const max = this.config.current.config.edge.maxRecipients;
          if (session.envelope.rcptTo.length >= max) {
            await this.policy.decide(s, 'rcpt', 'recipients', async () => ({
              outcome: 'defer',
              reason: 'rcpt.too_many',
              vars: { max },
              refuse: true,
            }));
          }
          await this.policy.rcptTo(s, address.address);
        }),
      onData: (stream, session, cb) => {
        let answered = false;
        const answer = (err?: Error | null, message?: string) => {
          if (answered) return;
          answered = true;
          cb(err ?? null, message);
        };
        this.guard(
          answer,
          async () => {
            const message = await this.onData(stream, session);
            answer(null, message);
          },
          true,
        );
        // A failure before the stream ended must still drain it, or the client hangs in DATA.
        stream.on('error', () => stream.resume());
      },
      onClose: (session) => {
        const s = this.sessions.get(session.id);
        if (!s) return;
        s.span.end();
        this.sessions.delete(session.id);
      },
    };
  }

  /** Runs a handler; a reply error becomes the reply, anything else is logged and answered 451 4.3.0. */
  private guard(cb: (err?: Error | null) => void, fn: () => Promise<void>, selfAnswers = false): void {
    fn().then(
      () => {
        if (!selfAnswers) cb();
      },
      (err: unknown) => {
        if (isReply(err)) return cb(err);
        this.logger.error({ err: (err as Error).stack ?? String(err) }, 'internal error in SMTP handler');
        cb(replyError({ code: 451, enhanced: '4.3.0', text: 'Internal error, please try again later' }));
      },
    );
  }

  private session(session: SMTPServerSession): EdgeSession {
    const s = this.sessions.get(session.id);
    if (!s) throw new Error(`no state for session ${session.id}`);
    return s;
  }

  private async onConnect(listener: ListenerName, session: SMTPServerSession): Promise<void> {
    const { span, ctx } = startSpan('smtp.session', {
      'smtpguard.session': session.id,
      'smtpguard.listener': listener,
      'client.address': session.remoteAddress,
      'client.port': session.remotePort,
    });
    const s: EdgeSession = {
      id: session.id,
      listener,
      clientIp: session.remoteAddress,
      clientPort: session.remotePort,
      clientHostname: '',
      helo: '',
      tls: session.secure,
      user: '',
      trustedRule: '',
      transactionId: '',
      transactionCount: 0,
      sender: '',
      dnswlListed: false,
      spfPassDomain: '',
      greylistDelay: 0,
      span,
      ctx,
      edgeInstance: this.config.current.config.instance,
    };
    this.sessions.set(session.id, s);
    context.with(ctx, () => this.policy.connect(s));
  }

  private async onData(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const s = this.session(session);
    const edge = this.config.current.config.edge;
    const recipients = session.envelope.rcptTo.map((r) => r.address);
    const id = newMessageId();
    const { data, oversized } = await readMessage(stream, edge.maxMessageBytes);
    if (oversized || stream.sizeExceeded) {
      await this.policy.decide(s, 'data', 'size', async () => ({
        outcome: 'fail',
        reason: 'data.size_exceeded',
        vars: { max_bytes: edge.maxMessageBytes },
        refuse: true,
      }));
    }
    const header = receivedHeader({
      helo: s.helo,
      clientHostname: s.clientHostname,
      clientIp: s.clientIp,
      byHost: edge.hostname,
      protocol: session.transmissionType || 'ESMTP',
      id,
      recipients,
    });
    const delay =
      edge.checks.greylist.delayHeader && s.greylistDelay > 0
        ? `X-Greylist: delayed ${s.greylistDelay} seconds by smtpguard at ${edge.hostname}; ${messageDate()}\r\n`
        : '';
    const message = Buffer.concat([Buffer.from(header + delay), data]);
    const hop = this.nextHop();
    const vars = { recipients: recipients.join(', '), next_hop: hop.describe() };
    await this.policy.decide(
      s,
      'queue',
      'delivery',
      async (): Promise<Verdict> => {
        try {
          await withSpan('next-hop deliver', { 'smtpguard.next_hop': hop.describe() }, () =>
            hop.deliver(id, { from: s.sender, to: recipients }, message),
          );
          return {
            outcome: 'pass',
            reason: 'queue.accepted',
            vars,
            attributes: { next_hop: hop.describe(), bytes: String(message.length) },
          };
        } catch (err) {
          if (!(err instanceof DeliveryError)) throw err;
          return {
            outcome: err.permanent ? 'fail' : 'error',
            reason: err.reasonCode,
            vars: { ...vars, error: err.message },
            attributes: { next_hop: hop.describe(), error: err.message },
            refuse: true,
          };
        }
      },
      { messageId: id },
    );
    return `2.0.0 Ok: queued as ${id}`;
  }
}
