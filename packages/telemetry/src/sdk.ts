import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, NoopSpanProcessor } from '@opentelemetry/sdk-trace';

let sdk: NodeSDK | undefined;
let exporting = false;

/**
 * Spans are exported (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set). When they are
 * not, the per-check spans and the gRPC instrumentation's client and server spans are not made at all: nobody
 * would see them, and they cost more than the checks they wrap. Each SMTP session still has its span (its trace
 * id is in logs and decisions), and grpc-kit carries the trace context to the services by hand.
 */
export function tracesExported(): boolean {
  return exporting;
}

/**
 * Starts the OpenTelemetry SDK. Session spans are always created (trace ids appear in logs, decisions and
 * NATS headers); spans are exported over OTLP/HTTP, and the finer ones (per check, gRPC client and server) made,
 * only when OTEL_EXPORTER_OTLP_ENDPOINT (or the traces-specific variable) is set. Service name from
 * OTEL_SERVICE_NAME.
 */
export async function startTelemetry(): Promise<void> {
  if (sdk) return;
  const env = process.env;
  const exportTraces = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  exporting = exportTraces;
  const exportMetrics = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT);
  sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? 'smtpguard',
    instrumentations: exportTraces ? [new GrpcInstrumentation()] : [],
    spanProcessors: exportTraces
      ? [new BatchSpanProcessor({ exporter: new OTLPTraceExporter() })]
      : [new NoopSpanProcessor()],
    ...(exportMetrics
      ? { metricReaders: [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter() })] }
      : {}),
  });
  sdk.start();
}

export async function stopTelemetry(): Promise<void> {
  await sdk?.shutdown();
  sdk = undefined;
}
