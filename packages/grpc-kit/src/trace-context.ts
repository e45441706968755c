import type { Metadata } from '@grpc/grpc-js';
import { type Context, context, propagation, trace } from '@opentelemetry/api';

// The W3C trace context travels in the gRPC metadata (traceparent, tracestate) on every call, whether or not
// the OpenTelemetry gRPC instrumentation is loaded (it is only when spans are exported, and then it writes the
// same headers itself, naming its client span). So a service's decisions carry the trace id of the SMTP
// session that caused them either way.

/** Metadata for an outgoing call, carrying the trace context of `ctx` (the active one by default). */
export function metadataWithTraceContext(md: Metadata, ctx: Context = context.active()): Metadata {
  if (trace.getSpanContext(ctx)) {
    propagation.inject(ctx, md, { set: (carrier, key, value) => carrier.set(key, value) });
  }
  return md;
}

/**
 * Runs a handler in the caller's trace context, taken from the call's metadata, unless a span is active already
 * (the gRPC instrumentation's server span, whose parent is that same context).
 */
export function inCallerContext<T>(md: Metadata, fn: () => T): T {
  if (trace.getSpan(context.active())) return fn();
  const parent = propagation.extract(context.active(), md, {
    get: (carrier, key) => {
      const v = carrier.get(key)[0];
      return typeof v === 'string' ? v : undefined;
    },
    keys: (carrier) => Object.keys(carrier.getMap()),
  });
  if (!trace.getSpanContext(parent)) return fn();
  return context.with(parent, fn);
}
