import { Resolver } from 'node:dns/promises';
import type { Config } from '@smtpguard/config';

/** A resolver on the configured servers ("ip" or "ip:port"), or the system's when none are set. */
export function createResolver(dns: Config['reputation']['dns']): Resolver {
  const resolver = new Resolver({ timeout: dns.timeoutMs, tries: dns.tries });
  if (dns.servers.length) resolver.setServers(dns.servers);
  return resolver;
}

/** True for answers that mean "no such record" rather than a failed lookup. */
export function isNoData(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOTFOUND' || code === 'ENODATA';
}
