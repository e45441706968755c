import type { ServiceContext, ServiceParts } from '@smtpguard/service-runtime';
import { Greylister } from './greylister.js';
import { openStore } from './store/index.js';
import { greylistServiceBinding } from './transport/grpc.js';

/** The greylist service: its state, its gRPC binding, how it stops. */
export async function buildGreylist({ config, logger, decisions }: ServiceContext): Promise<ServiceParts> {
  const store = await openStore(config.current);
  const g = config.current.config.greylist;
  logger.info({ store: g.store.type, triplets: await store.countTriplets() }, 'greylist store open');
  const greylister = new Greylister(store, () => config.current.config.greylist);
  return {
    grpc: {
      listen: (c) => c.greylist.listen,
      bindings: [greylistServiceBinding({ greylister, store, decisions })],
    },
    stop: () => store.close(),
  };
}
