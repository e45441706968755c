import { Metadata, type ServiceDefinition, type ServiceError, status } from '@grpc/grpc-js';
import { answered, BackendError } from './client.js';
import type { ServiceBinding } from './server.js';

/** A grpc-js server handler (unary or client-streaming) as the implementation of a binding holds it. */
type Handler = (call: unknown, callback: (err: ServiceError | null, res?: unknown) => void) => void;

/** The client method a call names: grpc-js puts the method's path on every generated client method. */
export interface MethodRef {
  name: string;
  path?: string;
}

/**
 * The services running in this process, callable without gRPC (the one-process mode of `pnpm start`): a call
 * goes straight to the service's handler, the one its gRPC server runs for a remote caller, with the same
 * request object and deadline, in the caller's (trace) context; an error becomes the same BackendError a remote call gives.
 * Only the network, HTTP/2 and protobuf encoding are left out.
 */
export class LocalServices {
  private handlers = new Map<string, Handler>();

  add(binding: ServiceBinding): void {
    for (const [key, method] of Object.entries(binding.definition)) {
      const handler = binding.implementation[key];
      if (typeof handler === 'function') this.handlers.set(method.path, handler as Handler);
    }
  }

  /** True when every method of the service is served here. */
  serves(definition: ServiceDefinition): boolean {
    const paths = Object.values(definition).map((m) => m.path);
    return paths.length > 0 && paths.every((p) => this.handlers.has(p));
  }

  handler(method: MethodRef): Handler | undefined {
    return method.path ? this.handlers.get(method.path) : undefined;
  }
}

/** Runs a handler with a deadline; settles once (the answer, or DEADLINE_EXCEEDED / INTERNAL). */
function callHandler<Res>(
  backend: string,
  handler: Handler,
  method: MethodRef,
  call: object,
  deadlineMs: number,
): Promise<Res> {
  const started = performance.now();
  return new Promise<Res>((resolve, reject) => {
    const done = answered(backend, method, started, resolve, reject);
    let settled = false;
    const finish = (err: ServiceError | null, res?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      done(err, res as Res);
    };
    const timer = setTimeout(
      () => finish(serviceError(status.DEADLINE_EXCEEDED, 'Deadline exceeded (in-process call)')),
      deadlineMs,
    );
    try {
      // No trace context in the metadata: the handler runs in the caller's async context, so it is active there.
      handler({ ...call, metadata: new Metadata(), getPeer }, finish);
    } catch (err) {
      finish(serviceError(status.INTERNAL, (err as Error).message));
    }
  });
}

const getPeer = () => 'in-process';

function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new Metadata() });
}

/** A unary call to a handler of this process, as `unary()` makes it over gRPC. */
export function localUnary<Req, Res>(
  backend: string,
  handler: Handler,
  method: MethodRef,
  request: Req,
  deadlineMs: number,
): Promise<Res> {
  return callHandler(backend, handler, method, { request }, deadlineMs);
}

/**
 * A client-streaming call to a handler of this process, as `clientStream()` makes it over gRPC: the handler
 * pulls the requests itself (so backpressure holds); an error of the caller's own request stream is thrown
 * as is, not as a BackendError, as over gRPC.
 */
export async function localClientStream<Req, Res>(
  backend: string,
  handler: Handler,
  method: MethodRef,
  requests: AsyncIterable<Req>,
  deadlineMs: number,
): Promise<Res> {
  let feedError: { err: unknown } | undefined;
  const feed: AsyncIterable<Req> = {
    async *[Symbol.asyncIterator]() {
      try {
        yield* requests;
      } catch (err) {
        feedError = { err };
        throw err;
      }
    },
  };
  try {
    return await callHandler<Res>(
      backend,
      handler,
      method,
      { [Symbol.asyncIterator]: () => feed[Symbol.asyncIterator]() },
      deadlineMs,
    );
  } catch (err) {
    if (feedError && err instanceof BackendError) throw feedError.err;
    throw err;
  }
}
