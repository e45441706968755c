import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '@smtpguard/config';
import type { Logger } from '@smtpguard/logging';
import type { BackendName } from './backends.js';

const BACKENDS: BackendName[] = ['auth', 'reputation', 'greylist'];

export interface Readiness {
  ready: boolean;
  /** Why not ready; empty when ready. */
  reasons: string[];
  backends: Record<BackendName, 'reachable' | 'unreachable'>;
}

export interface HealthDeps {
  settings: () => Config['edge']['health'];
  /** True when a replica of the backend accepts a connection within timeoutMs (Backends.reachable). */
  reachable: (name: BackendName, timeoutMs: number) => Promise<boolean>;
  /** True once the SMTP listeners are up, false again from the start of a shutdown. */
  serving: () => boolean;
}

/** The edge's readiness: serving, and every backend in edge.health.requireBackends reachable. */
export async function readiness(deps: HealthDeps): Promise<Readiness> {
  const cfg = deps.settings();
  const results = await Promise.all(BACKENDS.map((b) => deps.reachable(b, cfg.backendTimeoutMs)));
  const backends = Object.fromEntries(
    BACKENDS.map((b, i) => [b, results[i] ? 'reachable' : 'unreachable']),
  ) as Readiness['backends'];
  const reasons: string[] = [];
  if (!deps.serving()) reasons.push('not serving (starting or draining)');
  for (const b of cfg.requireBackends) if (backends[b] !== 'reachable') reasons.push(`${b} unreachable`);
  return { ready: reasons.length === 0, reasons, backends };
}

/** "host:port" or "[v6]:port" to listen() arguments. */
function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(listen);
  if (!m) throw new Error(`edge.health.listen: "${listen}" is not host:port`);
  return { host: m[1] as string, port: Number(m[2]) };
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

/** GET /healthz: 200 while the process runs. GET /readyz: 200 when ready, else 503. Both JSON. */
export async function startHealthServer(
  listen: string,
  deps: HealthDeps,
  logger: Logger,
): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: object) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'GET only' });
    if (path === '/healthz') return send(200, { status: 'ok' });
    if (path === '/readyz') {
      readiness(deps).then(
        (r) => {
          if (!r.ready) logger.debug({ reasons: r.reasons }, 'not ready');
          send(r.ready ? 200 : 503, r);
        },
        (err: Error) => send(503, { ready: false, reasons: [err.message] }),
      );
      return;
    }
    send(404, { error: 'not found; try /healthz or /readyz' });
  });
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  logger.info({ listen, port: bound }, 'health endpoints listening (/healthz, /readyz)');
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
