export { BackendError, clientStream, createClient, unary } from './client.js';
export {
  clientStreamHandler,
  GrpcStatusError,
  OPERATOR_METADATA,
  operatorMetadata,
  operatorOf,
  unaryHandler,
} from './handlers.js';
export { healthCheck } from './health-client.js';
export { onShutdownSignal, runMain } from './lifecycle.js';
export { LocalServices, localClientStream, localUnary, type MethodRef } from './local.js';
export { type RunningGrpcServer, type ServiceBinding, startGrpcServer } from './server.js';
export { inCallerContext, metadataWithTraceContext } from './trace-context.js';
