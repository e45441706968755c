import { type LoadedConfig, natsServers } from '@smtpguard/config';
import { FileKvStore, type KvStore, NatsKvStore } from '@smtpguard/kv-store';
import { type FailureCounter, Lockout } from './lockout.js';
import { type LoginEntry, PopLogins } from './pop-logins.js';
import { HOUR_MS, SendingQuota, type Usage } from './sending-quota.js';

export { type FailureCounter, Lockout, type LockoutKind, type LockState, lockoutKey } from './lockout.js';
export { type LoginEntry, type PopCheck, PopLogins } from './pop-logins.js';
export { SendingQuota, type Usage } from './sending-quota.js';

export interface AuthState {
  store: KvStore;
  lockout: Lockout;
  logins: PopLogins;
  quota: SendingQuota;
}

/** Opens auth.store (file or NATS KV) and its three buckets: logins, lockout, sending. */
export async function openAuthState(loaded: LoadedConfig, current: () => LoadedConfig): Promise<AuthState> {
  const { auth: a, nats } = loaded.config;
  let store: KvStore;
  if (a.store.type === 'file') {
    store = new FileKvStore(loaded.statePath(a.store.file));
  } else {
    const servers = natsServers(loaded.config);
    if (!servers.length)
      throw new Error(
        'auth.store.type is nats-kv but nats.url is empty: set nats.url or use auth.store.type: file',
      );
    store = await NatsKvStore.open({
      servers,
      prefix: a.store.bucketPrefix,
      connectTimeoutMs: nats.connectTimeoutMs,
      replicas: a.store.replicas,
      retryMs: a.store.retryMs,
      name: `smtpguard-auth-${loaded.config.instance}`,
    });
  }
  try {
    const l = a.lockout;
    const [logins, lockout, sending] = await Promise.all([
      store.bucket<LoginEntry>('logins', { maxAgeSeconds: a.popBeforeSmtp.windowSeconds }),
      store.bucket<FailureCounter>('lockout', {
        maxAgeSeconds: Math.max(l.windowSeconds, l.lockoutSeconds) + 60,
      }),
      store.bucket<Usage>('sending', { maxAgeSeconds: (2 * HOUR_MS) / 1000 }),
    ]);
    return {
      store,
      lockout: new Lockout(lockout, () => current().config.auth.lockout),
      logins: new PopLogins(logins, () => current().config.auth.popBeforeSmtp),
      quota: new SendingQuota(sending),
    };
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
}
