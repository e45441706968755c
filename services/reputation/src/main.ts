import { runService } from '@smtpguard/service-runtime';
import { buildReputation } from './build.js';

runService('reputation', buildReputation);
