import { runService } from '@smtpguard/service-runtime';
import { buildAuth } from './build.js';

runService('auth', buildAuth);
