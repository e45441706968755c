import './smtp/replies.js';
import { runService } from '@smtpguard/service-runtime';
import { Backends } from './backends.js';
import { createNextHop } from './delivery/next-hop.js';
import { Policy } from './policy/pipeline.js';
import { Edge } from './smtp/edge.js';

runService('smtp-edge', async ({ config, logger, decisions }) => {
  const backends = new Backends(config.current.config.edge.backends);
  const policy = new Policy(() => config.current.config, backends, decisions);
  let nextHop = createNextHop(config.current);
  logger.info({ nextHop: nextHop.describe() }, 'next hop');
  config.onChange((c) => {
    backends.update(c.config.edge.backends);
    try {
      policy.reload();
    } catch (err) {
      logger.error(
        { err: (err as Error).message },
        'edge.trustedNetworks rejected; keeping the previous list',
      );
    }
    const previous = nextHop;
    nextHop = createNextHop(c);
    previous.close();
  });
  const edge = new Edge(config, policy, () => nextHop, logger);
  await edge.start();
  return {
    stop: async () => {
      await edge.stop();
      nextHop.close();
      backends.close();
    },
  };
});
