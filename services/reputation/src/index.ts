export { createResolver } from './dns.js';
export { checkDnsbl, type DnsblResult, reverseName } from './dnsbl.js';
