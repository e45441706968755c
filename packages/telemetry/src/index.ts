import {
  type Attributes,
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

import { tracesExported } from './sdk.js';

export { smtpguardMeter, smtpMetrics } from './metrics.js';
export { stopTelemetry, tracesExported } from './sdk.js';
export { SpanKind };

const tracer = trace.getTracer('smtpguard');

/**
 * Runs fn inside a new active span; the span records an exception and ends when fn settles. When spans are not
 * exported (tracesExported()), no span is made: fn runs in the parent's context (its trace id and propagation
 * unchanged) and gets a span that records nothing.
 */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  opts: { kind?: SpanKind; parent?: Context } = {},
): Promise<T> {
  const parent = opts.parent ?? context.active();
  if (!tracesExported()) {
    const quiet = trace.wrapSpanContext(trace.getSpanContext(parent) ?? INVALID_SPAN_CONTEXT);
    return parent === context.active() ? fn(quiet) : context.with(parent, fn, undefined, quiet);
  }
  return tracer.startActiveSpan(
    name,
    { attributes, kind: opts.kind ?? SpanKind.INTERNAL },
    parent,
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

/** Starts a span that the caller ends (for spans that outlive one call, like an SMTP session). */
export function startSpan(
  name: string,
  attributes: Attributes,
  parent?: Context,
): { span: Span; ctx: Context } {
  const span = tracer.startSpan(name, { attributes, kind: SpanKind.SERVER }, parent ?? context.active());
  return { span, ctx: trace.setSpan(parent ?? context.active(), span) };
}

/** Trace id of the active span, or "" when there is none. */
export function currentTraceId(ctx: Context = context.active()): string {
  const sc = trace.getSpanContext(ctx);
  return sc && sc.traceId !== '00000000000000000000000000000000' ? sc.traceId : '';
}

/** Writes the W3C trace context (traceparent, tracestate) of ctx into a header setter. */
export function injectTraceContext(
  set: (key: string, value: string) => void,
  ctx: Context = context.active(),
): void {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  // An empty tracestate is not sent (W3C: omit the header when there is no vendor state).
  for (const [k, v] of Object.entries(carrier)) if (v) set(k, v);
}

/** Reads W3C trace context from headers (e.g. a NATS message) into a Context. */
export function extractTraceContext(get: (key: string) => string | undefined): Context {
  const carrier: Record<string, string> = {};
  for (const k of ['traceparent', 'tracestate']) {
    const v = get(k);
    if (v) carrier[k] = v;
  }
  return propagation.extract(context.active(), carrier);
}

export { context, trace };
