import { connect, type NatsConnection } from '@nats-io/transport-node';
import { events } from '@smtpguard/contracts';
import { waitFor } from '@smtpguard/testing';

export interface ReceivedDecision {
  subject: string;
  msgId: string;
  traceparent: string;
  /** Every header name the message carried (to see that none is sent empty). */
  headerNames: string[];
  /** Header values, by name. */
  headers: Record<string, string>;
  decision: events.Decision;
}

/** Listens to every decision published on NATS (core subscription on smtpguard.decision.v1.>). */
export class DecisionTap {
  readonly seen: ReceivedDecision[] = [];
  private constructor(private readonly nc: NatsConnection) {}

  static async open(url: string): Promise<DecisionTap> {
    const nc = await connect({ servers: url });
    const tap = new DecisionTap(nc);
    const sub = nc.subscribe('smtpguard.decision.v1.>');
    void (async () => {
      for await (const m of sub) {
        tap.seen.push({
          subject: m.subject,
          msgId: m.headers?.get('Nats-Msg-Id') ?? '',
          traceparent: m.headers?.get('traceparent') ?? '',
          headerNames: m.headers ? [...m.headers.keys()] : [],
          headers: Object.fromEntries(
            m.headers ? [...m.headers.keys()].map((k) => [k, m.headers?.get(k) ?? '']) : [],
          ),
          decision: events.Decision.decode(m.data),
        });
      }
    })();
    await nc.flush();
    return tap;
  }

  /** Waits for a decision matching pred. */
  find(pred: (d: events.Decision, r: ReceivedDecision) => boolean, what: string): Promise<ReceivedDecision> {
    return waitFor(`decision ${what}`, () => this.seen.find((r) => pred(r.decision, r)), 5000);
  }

  close(): Promise<void> {
    return this.nc.close();
  }
}
