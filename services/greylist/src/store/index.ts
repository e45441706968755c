import type { LoadedConfig } from '@smtpguard/config';
import { FileGreylistStore } from './file-store.js';
import type { GreylistStore } from './store.js';

export { FileGreylistStore } from './file-store.js';
export type { ClientRecord, GreylistStore, TripletRecord, WhitelistKind, WhitelistRecord } from './store.js';

/** The store named by greylist.store.type. */
export async function openStore(loaded: LoadedConfig): Promise<GreylistStore> {
  const g = loaded.config.greylist;
  if (g.store.type === 'file') {
    return new FileGreylistStore(loaded.statePath(g.store.file), { expirySeconds: g.expirySeconds });
  }
  throw new Error('greylist.store.type: nats-kv is not available in this build');
}
