import { runService } from '@smtpguard/service-runtime';
import { buildGreylist } from './build.js';

runService('greylist', buildGreylist);
