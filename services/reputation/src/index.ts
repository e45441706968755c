export { createResolver } from './dns.js';
export { checkLists, type ListResult, reverseName } from './dnsbl.js';
export { fcrdns } from './fcrdns.js';
export { checkSpf } from './spf.js';
