import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { NoopSpanProcessor } from '@opentelemetry/sdk-trace';

let sdk: NodeSDK | undefined;
let exporting = false;

/**
 * Whether spans are exported. When they are not, the per-check spans and the gRPC instrumentation's client and
 * server spans are not made at all: nobody would see them, and they cost more than the checks they wrap. Each
 * SMTP session still has its span (its trace id is in logs and decisions), and grpc-kit carries the trace
 * context to the services by hand.
 */
export function tracesExported(): boolean {
  return exporting;
}

/**
 * Starts the OpenTelemetry SDK, configured by the standard OTEL_* environment variables.
 *
 * Traces: spans are always created (trace ids appear in logs, decisions and NATS headers); they are exported
 * only when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-specific variable) is set, or OTEL_TRACES_EXPORTER names
 * an exporter; then the SDK reads OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL (http/protobuf by
 * default, http/json, grpc) and OTEL_BSP_* itself.
 *
 * Metrics: the SDK reads OTEL_METRICS_EXPORTER itself (`otlp`, `prometheus`, `console`, `none`, comma-separated)
 * with OTEL_EXPORTER_PROMETHEUS_HOST / OTEL_EXPORTER_PROMETHEUS_PORT for the scrape endpoint and the
 * OTEL_EXPORTER_OTLP_* / OTEL_METRIC_EXPORT_INTERVAL variables for OTLP. The one default smtpguard sets: when
 * OTEL_METRICS_EXPORTER is not set, it is `otlp` if an OTLP endpoint is configured and `none` otherwise (the
 * SDK's own default, otlp to localhost:4318, would fail every minute on a machine without a collector).
 * Service name from OTEL_SERVICE_NAME.
 */
export async function startTelemetry(): Promise<void> {
  if (sdk) return;
  const env = process.env;
  const exportTraces =
    Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) ||
    Boolean(env.OTEL_TRACES_EXPORTER && env.OTEL_TRACES_EXPORTER !== 'none');
  exporting = exportTraces;
  if (!env.OTEL_METRICS_EXPORTER) {
    const otlp = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT);
    env.OTEL_METRICS_EXPORTER = otlp ? 'otlp' : 'none';
  }
  sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? 'smtpguard',
    instrumentations: exportTraces ? [new GrpcInstrumentation()] : [],
    // Without export, a processor that drops the spans, so that the tracer provider (and trace ids) exist.
    ...(exportTraces ? {} : { spanProcessors: [new NoopSpanProcessor()] }),
  });
  sdk.start();
}

export async function stopTelemetry(): Promise<void> {
  await sdk?.shutdown();
  sdk = undefined;
}
