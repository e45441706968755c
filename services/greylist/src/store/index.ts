import { type LoadedConfig, natsServers } from '@smtpguard/config';
import { smtpMetrics } from '@smtpguard/telemetry';
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
    return measured(
      'file',
      new FileGreylistStore(loaded.statePath(g.store.file), { expirySeconds: g.expirySeconds }),
    );
  }
  const servers = natsServers(loaded.config);
  if (!servers.length)
    throw new Error(
      'greylist.store.type is nats-kv but nats.url is empty: set nats.url (comma-separated servers) or use greylist.store.type: file',
    );
  const kv = await NatsKvGreylistStore.open({
    servers,
    bucketPrefix: g.store.bucketPrefix,
    expirySeconds: g.expirySeconds,
    connectTimeoutMs: nats.connectTimeoutMs,
    replicas: g.store.replicas,
    retryMs: g.store.retryMs,
    name: `smtpguard-greylist-${loaded.config.instance}`,
  });
  return measured('nats-kv', kv);
}

/**
 * The store with each operation timed (metric smtpguard.greylist.store.duration: store, operation, outcome).
 * A Proxy, so every method of the interface is measured without repeating it here.
 */
function measured(store: string, inner: GreylistStore): GreylistStore {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || prop === 'close' || typeof prop !== 'string') return value;
      return async (...args: unknown[]) => {
        const started = performance.now();
        try {
          const r = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          smtpMetrics.greylistStore(store, prop, true, started);
          return r;
        } catch (err) {
          smtpMetrics.greylistStore(store, prop, false, started);
          throw err;
        }
      };
    },
  });
}
