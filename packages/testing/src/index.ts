// Real parts for tests, shared by the services' own tests and the end-to-end tests in test/.

export {
  type CapturedMessage,
  type CaptureOptions,
  type CaptureServer,
  smtpError,
  startCaptureServer,
} from './capture-smtp.js';
export { type NatsCluster, type NatsNode, type NatsServer, startNats, startNatsCluster } from './nats.js';
export { canConnect, freePort, waitFor } from './ports.js';
