export { ClientRules } from './client-rules.js';
export { canonicalIp, ipv6Groups, plainIp } from './ip.js';
export { NetworkList } from './network-list.js';
