export { BackendError, createClient, unary } from './client.js';
export { GrpcStatusError, notImplemented, unaryHandler } from './handlers.js';
export { onShutdownSignal, runMain } from './lifecycle.js';
export { type RunningGrpcServer, type ServiceBinding, startGrpcServer } from './server.js';
