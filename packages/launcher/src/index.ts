export {
  type LogLine,
  type RunningService,
  type RunningSystem,
  SERVICES,
  type ServiceName,
  type SystemOptions,
  startService,
  startSystem,
} from './system.js';
