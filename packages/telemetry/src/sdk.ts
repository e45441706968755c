import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, NoopSpanProcessor } from '@opentelemetry/sdk-trace';

let sdk: NodeSDK | undefined;

/**
 * Starts the OpenTelemetry SDK. Spans are always created (trace ids appear in logs, decisions and
 * NATS headers); they are exported over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT (or the
 * traces-specific variable) is set. Service name from OTEL_SERVICE_NAME.
 */
export async function startTelemetry(): Promise<void> {
  if (sdk) return;
  const env = process.env;
  const exportTraces = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  const exportMetrics = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT);
  sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? 'smtpguard',
    instrumentations: [new GrpcInstrumentation()],
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
