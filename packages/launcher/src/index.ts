export { type LogLine, type RunningService, type RunningSystem, SERVICES, type ServiceName, startService, startSystem, type SystemOptions } from './system.js';
