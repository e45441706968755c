import { once } from 'node:events';
import { isIP } from 'node:net';
import {
  type CallOptions,
  type Client,
  type ClientUnaryCall,
  type ClientWritableStream,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { smtpMetrics } from '@smtpguard/telemetry';
import { metadataWithTraceContext } from './trace-context.js';

/** A backend call that did not produce an answer (unreachable, deadline, server error). */
export class BackendError extends Error {
  constructor(
    readonly backend: string,
    readonly method: string,
    readonly code: status,
    detail: string,
  ) {
    super(`${backend}.${method}: ${status[code] ?? code}: ${detail}`);
    this.name = 'BackendError';
  }
}

/**
 * Records a call (rpc.client.call.duration): service and method from the method's path
 * ("/smtpguard.greylist.v1.GreylistService/Check"), which grpc-js attaches to each client method and the gRPC
 * instrumentation copies onto its wrapper (whose name is its own); status by name ("OK", "UNAVAILABLE").
 */
function rpcMetric(method: { path?: string; name: string }, err: ServiceError | null, started: number): void {
  const [service = 'unknown', name = method.name] = (method.path ?? '').replace(/^\//, '').split('/');
  smtpMetrics.rpcCall(service, name, err ? (status[err.code] ?? 'UNKNOWN') : 'OK', started);
}

type ClientCtor<C> = new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options?: object,
) => C;

/**
 * The gRPC target of an address setting: one `host:port` (a DNS name is resolved to every address it has, e.g. a
 * Kubernetes headless Service with one per replica, and resolved again as replicas come and go), or a
 * comma-separated list of `ip:port` replicas.
 */
export function grpcTarget(address: string): string {
  const parts = address
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const hostOf = (p: string) =>
    p.startsWith('[') ? p.slice(1, p.indexOf(']')) : p.slice(0, p.lastIndexOf(':'));
  if (parts.length === 1) {
    const only = parts[0] as string;
    return isIP(hostOf(only)) ? only : `dns:///${only}`;
  }
  const families = new Set(parts.map((p) => isIP(hostOf(p))));
  if (families.size !== 1 || families.has(0)) {
    throw new Error(
      `"${address}": a list of replicas must be IP:port entries of one family; for host names use one DNS name that resolves to every replica`,
    );
  }
  return `${families.has(4) ? 'ipv4' : 'ipv6'}:${parts.join(',')}`;
}

// Every call is balanced over the ready replicas (round robin); a call a replica could not take (UNAVAILABLE:
// down, refusing, restarting) is tried again on another one. Only UNAVAILABLE: the call did not reach a
// service, so even a call that changes state (greylist.Check counts deliveries) is never done twice.
const SERVICE_CONFIG = JSON.stringify({
  loadBalancingConfig: [{ round_robin: {} }],
  methodConfig: [
    {
      name: [{}],
      retryPolicy: {
        maxAttempts: 3,
        initialBackoff: '0.02s',
        maxBackoff: '0.2s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ],
});

/** A client for a smtpguard service. Calls fail fast when no replica is up (no wait-for-ready). */
export function createClient<C extends Client>(Ctor: ClientCtor<C>, address: string): C {
  return new Ctor(grpcTarget(address), credentials.createInsecure(), {
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 2000,
    'grpc.service_config': SERVICE_CONFIG,
    'grpc.enable_retries': 1,
    // Replicas come and go (rolling updates, rescheduling): look the name up again after a failure, soon.
    'grpc.dns_min_time_between_resolutions_ms': 2000,
  });
}

/** The callback of a call: records its metric, then resolves with the answer or rejects with a BackendError. */
export function answered<Res>(
  backend: string,
  method: { name: string },
  started: number,
  resolve: (res: Res) => void,
  reject: (err: BackendError) => void,
): (err: ServiceError | null, res: Res) => void {
  return (err, res) => {
    rpcMetric(method, err, started);
    if (err) reject(new BackendError(backend, method.name || 'call', err.code, err.details || err.message));
    else resolve(res);
  };
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** Calls one unary method with a deadline; any failure becomes a BackendError. */
export function unary<Req, Res>(
  backend: string,
  client: Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  deadlineMs: number,
  metadata: Metadata = new Metadata(),
): Promise<Res> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    method.call(
      client,
      request,
      metadataWithTraceContext(metadata),
      { deadline: Date.now() + deadlineMs },
      answered(backend, method, started, resolve, reject),
    );
  });
}

type ClientStreamMethod<Req, Res> = (
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientWritableStream<Req>;

/**
 * Calls one client-streaming method with a deadline: `feed` yields the requests, written with backpressure
 * (a slow server slows the writer, nothing piles up in memory). Any failure becomes a BackendError.
 */
export async function clientStream<Req, Res>(
  backend: string,
  client: Client,
  method: ClientStreamMethod<Req, Res>,
  requests: AsyncIterable<Req>,
  deadlineMs: number,
): Promise<Res> {
  let call!: ClientWritableStream<Req>;
  const started = performance.now();
  const answer = new Promise<Res>((resolve, reject) => {
    call = method.call(
      client,
      metadataWithTraceContext(new Metadata()),
      { deadline: Date.now() + deadlineMs },
      answered(backend, method, started, resolve, reject),
    );
  });
  let settled = false;
  answer.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  try {
    for await (const req of requests) {
      if (settled) break;
      if (!call.write(req)) await Promise.race([once(call, 'drain'), answer.catch(() => undefined)]);
    }
    call.end();
  } catch (err) {
    call.cancel();
    await answer.catch(() => undefined);
    throw err;
  }
  return answer;
}
