import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@smtpguard/logging';
import type { LoginRecorder } from '../logins.js';

/** A login event from a mailbox server, as JSON on the login subject. */
interface LoginEvent {
  account?: string;
  clientIp?: string;
  protocol?: string;
  /** Default true: the event reports a successful login. */
  success?: boolean;
  /** Unix milliseconds; default: when it arrives. */
  time?: number;
}

// Replicas share one queue group: each event is handled once (the entry is shared through the store anyway).
const QUEUE = 'smtpguard-auth';

/**
 * Login events of mailbox servers other than Dovecot, on a NATS subject (auth.popBeforeSmtp.natsSubject):
 * JSON `{"account": "alice@example.test", "clientIp": "192.0.2.7", "protocol": "imap"}`. A request with a reply
 * subject gets `{"recorded": true, "expiresAt": ...}` or `{"error": "..."}`.
 */
export async function subscribeLoginEvents(
  servers: string[],
  subject: string,
  logins: LoginRecorder,
  logger: Logger,
  name: string,
): Promise<{ close(): Promise<void> }> {
  const nc: NatsConnection = await connect({
    servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
  });
  const sub = nc.subscribe(subject, { queue: QUEUE });
  const done = (async () => {
    for await (const m of sub) {
      let answer: unknown;
      try {
        const e = m.json<LoginEvent>();
        if (typeof e.account !== 'string' || typeof e.clientIp !== 'string')
          throw new Error('account and clientIp are required');
        const r = await logins.report({
          login: e.account,
          clientIp: e.clientIp,
          protocol: String(e.protocol ?? ''),
          success: e.success !== false,
          time: typeof e.time === 'number' ? e.time : undefined,
        });
        answer = r;
        logger.debug({ subject: m.subject, account: e.account, clientIp: e.clientIp, ...r }, 'login event');
      } catch (err) {
        answer = { error: (err as Error).message };
        logger.warn({ subject: m.subject, err: (err as Error).message }, 'login event refused');
      }
      if (m.reply) m.respond(JSON.stringify(answer));
    }
  })();
  await nc.flush();
  logger.info({ subject }, 'listening for login events');
  return {
    async close() {
      sub.unsubscribe();
      await done.catch(() => undefined);
      await nc.drain().catch(() => undefined);
    },
  };
}
