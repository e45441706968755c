import { smtpMetrics } from '@smtpguard/telemetry';
import { defineCheck } from '../../engine/check.js';

/**
 * Connection control at accept time, before anything else is spent on the client: concurrent connections of
 * the edge and of the listener, concurrent connections of the client (IPv6 by /64), new connections of the
 * client per minute. A refused client gets 421 4.7.0 and the connection is closed.
 */
export const connectionLimits = defineCheck({
  name: 'connection-limits',
  phase: 'connect',
  reasons: ['connect.too_busy', 'connect.too_many_from_client', 'connect.rate_exceeded'],
  settings: [
    'edge.maxConnections',
    'edge.listeners.*.maxConnections',
    'edge.listeners.*.maxConnectionsPerClient',
    'edge.listeners.*.connectionsPerClientPerMinute',
  ],
  async run(ctx) {
    const refusal = await ctx.deps.connections.admit(ctx.session, ctx.cfg);
    if (!refusal) return undefined;
    smtpMetrics.connectionRefused(ctx.session.listener, refusal.reason);
    return { outcome: 'defer', reason: refusal.reason, vars: refusal.vars, refuse: true, close: true };
  },
});
