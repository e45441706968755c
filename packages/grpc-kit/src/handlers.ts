import {
  type handleClientStreamingCall,
  type handleUnaryCall,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { inCallerContext } from './trace-context.js';

/** An error a handler throws to answer with a specific gRPC status (e.g. INVALID_ARGUMENT). */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

function toServiceError(err: unknown): ServiceError {
  const e = err instanceof Error ? err : new Error(String(err));
  const code = e instanceof GrpcStatusError ? e.code : status.INTERNAL;
  return Object.assign(e, { code, details: e.message, metadata: new Metadata() });
}

/** Adapts an async function to a grpc-js unary handler; a thrown error becomes a gRPC status. */
export function unaryHandler<Req, Res>(fn: (req: Req) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    inCallerContext(call.metadata, () => fn(call.request)).then(
      (res) => callback(null, res),
      (err) => callback(toServiceError(err)),
    );
  };
}

/** A handler for an RPC of the contract that this service version does not offer yet. */
export function notImplemented<Req, Res>(rpc: string): handleUnaryCall<Req, Res> {
  return (_call, callback) =>
    callback(
      toServiceError(new GrpcStatusError(status.UNIMPLEMENTED, `${rpc} is not implemented in this version`)),
    );
}

/**
 * Adapts an async function to a grpc-js client-streaming handler: it gets the request stream as an async
 * iterable (backpressure holds), its result or thrown error is the answer.
 */
export function clientStreamHandler<Req, Res>(
  fn: (requests: AsyncIterable<Req>) => Promise<Res>,
): handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    inCallerContext(call.metadata, () => fn(call as unknown as AsyncIterable<Req>)).then(
      (res) => callback(null, res),
      (err) => callback(toServiceError(err)),
    );
  };
}
