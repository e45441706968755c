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
export function unaryHandler<Req, Res>(
  fn: (req: Req, metadata: Metadata) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    inCallerContext(call.metadata, () => fn(call.request, call.metadata)).then(
      (res) => callback(null, res),
      (err) => callback(toServiceError(err)),
    );
  };
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

/** gRPC metadata key carrying the administrator's name on admin calls (`smtpguard --operator`). */
export const OPERATOR_METADATA = 'smtpguard-operator';

/** The operator named in a call's metadata; "unknown" when the client sent none. */
export function operatorOf(metadata: Metadata): string {
  const v = metadata.get(OPERATOR_METADATA)[0];
  const name = typeof v === 'string' ? v.trim().slice(0, 64) : '';
  return name || 'unknown';
}

/** Metadata naming the operator, for the admin calls of `smtpguard`. */
export function operatorMetadata(operator: string): Metadata {
  const m = new Metadata();
  m.set(OPERATOR_METADATA, operator);
  return m;
}
