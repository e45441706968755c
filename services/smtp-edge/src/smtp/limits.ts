import { isIPv6 } from 'node:net';
import type { Config } from '@smtpguard/config';
import { canonicalIp } from '@smtpguard/networks';
import type { Vars } from '@smtpguard/reasons';
import { smtpMetrics } from '@smtpguard/telemetry';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { ListenerName, Session } from '../session.js';

/** The unit connection limits count: an IPv4 address, or the /64 of an IPv6 address (one host's block). */
export function clientKey(ip: string): string {
  const canonical = canonicalIp(ip) ?? ip;
  if (!isIPv6(canonical)) return canonical;
  return `${canonical.split(':').slice(0, 4).join(':')}::/64`;
}

export type LimitRefusal =
  | { reason: 'connect.too_busy'; vars: Vars }
  | { reason: 'connect.too_many_from_client'; vars: Vars }
  | { reason: 'connect.rate_exceeded'; vars: Vars };

/**
 * Concurrent connections of the whole edge, of each listener and of each client per listener, and new
 * connections per client per minute (rate-limiter-flexible's in-memory fixed window, keys expire on their
 * own). Counts are per edge replica: a client spread over N replicas by the load balancer gets N times the
 * limit, which the docs say.
 */
export class ConnectionTracker {
  private total = 0;
  private readonly perListener = new Map<ListenerName, number>();
  private readonly perClient = new Map<string, number>();
  private readonly rates = new Map<ListenerName, { points: number; limiter: RateLimiterMemory }>();

  /** Counts the connection if the limits allow it (session.admitted); otherwise says which limit refused. */
  async admit(session: Session, cfg: Config): Promise<LimitRefusal | undefined> {
    const l = cfg.edge.listeners[session.listener];
    const key = `${session.listener} ${clientKey(session.clientIp)}`;
    // A load balancer's health checks are not a client: only the edge and listener limits count them.
    const perClient = !session.loadBalancer;
    if (
      perClient &&
      l.connectionsPerClientPerMinute > 0 &&
      !(await this.consume(session.listener, key, l.connectionsPerClientPerMinute))
    ) {
      return { reason: 'connect.rate_exceeded', vars: { limit: l.connectionsPerClientPerMinute } };
    }
    // Counted synchronously from here on, so concurrent accepts cannot overshoot a limit.
    const onListener = this.perListener.get(session.listener) ?? 0;
    const fromClient = this.perClient.get(key) ?? 0;
    if (this.total >= cfg.edge.maxConnections) {
      return {
        reason: 'connect.too_busy',
        vars: { connections: this.total, limit: cfg.edge.maxConnections },
      };
    }
    if (l.maxConnections > 0 && onListener >= l.maxConnections) {
      return { reason: 'connect.too_busy', vars: { connections: onListener, limit: l.maxConnections } };
    }
    if (perClient && l.maxConnectionsPerClient > 0 && fromClient >= l.maxConnectionsPerClient) {
      return {
        reason: 'connect.too_many_from_client',
        vars: { connections: fromClient + 1, limit: l.maxConnectionsPerClient },
      };
    }
    this.total += 1;
    this.perListener.set(session.listener, onListener + 1);
    if (perClient) this.perClient.set(key, fromClient + 1);
    session.admitted = true;
    smtpMetrics.connectionOpened(session.listener);
    return undefined;
  }

  /** Uncounts an admitted connection when it closes. */
  release(session: Session): void {
    if (!session.admitted) return;
    session.admitted = false;
    smtpMetrics.connectionClosed(session.listener);
    const key = `${session.listener} ${clientKey(session.clientIp)}`;
    this.total -= 1;
    this.perListener.set(session.listener, (this.perListener.get(session.listener) ?? 1) - 1);
    if (session.loadBalancer) return;
    const n = (this.perClient.get(key) ?? 1) - 1;
    if (n > 0) this.perClient.set(key, n);
    else this.perClient.delete(key);
  }

  /** Open admitted connections (all listeners). */
  get open(): number {
    return this.total;
  }

  private async consume(listener: ListenerName, key: string, points: number): Promise<boolean> {
    let rate = this.rates.get(listener);
    if (rate?.points !== points) {
      rate = { points, limiter: new RateLimiterMemory({ points, duration: 60 }) };
      this.rates.set(listener, rate);
    }
    try {
      await rate.limiter.consume(key, 1);
      return true;
    } catch (err) {
      if (err instanceof RateLimiterRes) return false;
      throw err;
    }
  }
}
