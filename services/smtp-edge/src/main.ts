import { runService } from '@smtpguard/service-runtime';
import { startEdge } from './service.js';

runService('smtp-edge', startEdge);
