import { type LoadedConfig, natsServers } from '@smtpguard/config';
import { FileGreylistStore } from './file-store.js';
import { NatsKvGreylistStore } from './nats-kv-store.js';
import type { GreylistStore } from './store.js';

export { FileGreylistStore } from './file-store.js';
export { NatsKvGreylistStore, type NatsKvStoreOptions } from './nats-kv-store.js';
export type { ClientRecord, GreylistStore, TripletRecord, WhitelistKind, WhitelistRecord } from './store.js';

/** The store named by greylist.store.type. */
export async function openStore(loaded: LoadedConfig): Promise<GreylistStore> {
  const { greylist: g, nats } = loaded.config;
  if (g.store.type === 'file') {
    return new FileGreylistStore(loaded.statePath(g.store.file), { expirySeconds: g.expirySeconds });
  }
  const servers = natsServers(loaded.config);
  if (!servers.length)
    throw new Error(
      'greylist.store.type is nats-kv but nats.url is empty: set nats.url (comma-separated servers) or use greylist.store.type: file',
    );
  return NatsKvGreylistStore.open({
    servers,
    bucketPrefix: g.store.bucketPrefix,
    expirySeconds: g.expirySeconds,
    connectTimeoutMs: nats.connectTimeoutMs,
    replicas: g.store.replicas,
    retryMs: g.store.retryMs,
    name: `smtpguard-greylist-${loaded.config.instance}`,
  });
}
