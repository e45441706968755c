import type { Context } from '@opentelemetry/api';
import type { events } from '@smtpguard/contracts';

/** Where decisions go. publish() must never block or throw into the SMTP dialogue. */
export interface DecisionPublisher {
  publish(d: events.Decision, ctx?: Context): void;
  close(): Promise<void>;
}
