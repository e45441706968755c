import { runService } from '@smtpguard/service-runtime';
import { Greylister } from './greylister.js';
import { FileTripletStore } from './store/file-store.js';
import { greylistServiceBinding } from './transport/grpc.js';

runService('greylist', async ({ config, logger, decisions }) => {
  const store = new FileTripletStore(config.current.statePath('greylist/triplets.jsonl'));
  logger.info(
    { file: store.path, triplets: await store.count(), skippedLines: store.skippedLines },
    'greylist store loaded',
  );
  const greylister = new Greylister(store, () => config.current.config.greylist);
  return {
    grpc: {
      listen: (c) => c.greylist.listen,
      bindings: [greylistServiceBinding({ greylister, store, decisions })],
    },
    stop: () => store.close(),
  };
});
