export { FileKvStore } from './file-store.js';
export {
  decodeKey,
  encodeKey,
  isTransient,
  MAX_UPDATE_ATTEMPTS,
  NatsKvStore,
  type NatsKvStoreOptions,
} from './nats-store.js';
export { type BucketOptions, checkBucketName, KEEP, type KvBucket, type KvStore } from './store.js';
