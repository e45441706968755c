// Preloaded with `node --import @smtpguard/telemetry/register` before any service code, so that
// instrumentation hooks are in place before @grpc/grpc-js is imported. Without the ESM loader hook
// registered here, gRPC spans silently do not appear.
import { register } from 'node:module';
import { startTelemetry } from './sdk.js';

register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
await startTelemetry();
