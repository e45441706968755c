export { BackendError, clientStream, createClient, unary } from './client.js';
export { clientStreamHandler, GrpcStatusError, notImplemented, unaryHandler } from './handlers.js';
export { onShutdownSignal, runMain } from './lifecycle.js';
export { type RunningGrpcServer, type ServiceBinding, startGrpcServer } from './server.js';
export { inCallerContext, metadataWithTraceContext } from './trace-context.js';
