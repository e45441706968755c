export { ClientRules } from './client-rules.js';
export { NetworkList } from './network-list.js';
