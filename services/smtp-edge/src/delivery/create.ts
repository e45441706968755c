import type { LoadedConfig } from '@smtpguard/config';
import type { NextHop } from './next-hop.js';
import { SmtpNextHop } from './smtp-hop.js';
import { SpoolNextHop } from './spool-hop.js';

/** The next hop the config names: the embedded spool (below the state directory) or an SMTP/LMTP server. */
export function createNextHop(loaded: LoadedConfig): NextHop {
  const hop = loaded.config.edge.nextHop;
  if (hop.type === 'spool') return new SpoolNextHop(loaded.statePath(hop.dir));
  return new SmtpNextHop(hop, loaded.config.edge.hostname);
}
