import { once } from 'node:events';
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

type ClientCtor<C> = new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options?: object,
) => C;

/** A client for a smtpguard service. Calls fail fast when the backend is down (no wait-for-ready). */
export function createClient<C extends Client>(Ctor: ClientCtor<C>, address: string): C {
  return new Ctor(address, credentials.createInsecure(), {
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 2000,
  });
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
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
      if (err) reject(new BackendError(backend, method.name || 'call', err.code, err.details || err.message));
      else resolve(res);
    });
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
  const answer = new Promise<Res>((resolve, reject) => {
    call = method.call(client, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
      if (err) reject(new BackendError(backend, method.name || 'call', err.code, err.details || err.message));
      else resolve(res);
    });
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
