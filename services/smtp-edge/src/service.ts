import type { Config } from '@smtpguard/config';
import { ClientRules } from '@smtpguard/networks';
import type { ServiceContext, ServiceParts } from '@smtpguard/service-runtime';
import { Backends } from './backends.js';
import { LookupCaches } from './cache/lookups.js';
import { prepareBufferDir } from './data/message-buffer.js';
import { createNextHop } from './delivery/create.js';
import { measuredNextHop } from './delivery/measured.js';
import { nextHopLoop } from './delivery/self-loop.js';
import { PHASES } from './engine/phases.js';
import { Runner } from './engine/runner.js';
import { type HealthServer, startHealthServer } from './health.js';
import { Edge } from './smtp/edge.js';
import { ConnectionTracker } from './smtp/limits.js';

function trustedList(cfg: Config): ClientRules {
  try {
    return new ClientRules(cfg.edge.trustedNetworks);
  } catch (err) {
    throw new Error(`edge.trustedNetworks: ${(err as Error).message}`);
  }
}

/** Builds the edge from the config: backends, next hop, the checks' runner, the listeners; and reloads it. */
export async function startEdge({ config, logger, decisions, local }: ServiceContext): Promise<ServiceParts> {
  const cfg = config.current.config;
  const loop = await nextHopLoop(cfg);
  if (loop) throw new Error(loop);
  const backends = new Backends(cfg.edge.backends, local);
  let trusted = trustedList(cfg);
  let nextHop = measuredNextHop(createNextHop(config.current));
  const tracker = new ConnectionTracker();
  let caches = new LookupCaches(cfg.edge.cache);
  const deps = {
    backends,
    nextHop: () => nextHop,
    trusted: () => trusted,
    connections: tracker,
    caches: () => caches,
  };
  const runner = new Runner(PHASES, deps, decisions, logger);
  const bufferDir = config.current.statePath('messages');
  await prepareBufferDir(bufferDir);
  const edge = new Edge(config, runner, PHASES, tracker, () => nextHop, logger, bufferDir);
  await edge.start();
  logger.info({ nextHop: nextHop.describe() }, 'next hop');
  let serving = true;
  // Read at start only: a new listen address needs a restart (the probes point at it anyway).
  const health: HealthServer | undefined = cfg.edge.health.listen
    ? await startHealthServer(
        cfg.edge.health.listen,
        {
          settings: () => config.current.config.edge.health,
          reachable: (name, timeoutMs) => backends.reachable(name, timeoutMs),
          serving: () => serving,
        },
        logger,
      )
    : undefined;

  config.onChange(async (c) => {
    // Nothing answered under the previous config is used under the new one (docs/performance.md).
    caches.clear();
    caches = new LookupCaches(c.config.edge.cache);
    backends.update(c.config.edge.backends);
    edge.reload();
    try {
      trusted = trustedList(c.config);
    } catch (err) {
      logger.error(
        { err: (err as Error).message },
        'edge.trustedNetworks rejected; keeping the previous list',
      );
    }
    const problem = await nextHopLoop(c.config);
    if (problem) {
      logger.error({ err: problem }, 'edge.nextHop rejected; keeping the previous next hop');
      return;
    }
    const previous = nextHop;
    nextHop = measuredNextHop(createNextHop(c));
    // Transactions in flight keep their side at the previous next hop; its pool closes when they are done.
    setTimeout(() => void previous.close(), c.config.edge.shutdownGraceMs).unref();
  });

  return {
    stop: async () => {
      // Not ready from the first moment of a shutdown; /healthz keeps answering while sessions finish.
      serving = false;
      await edge.stop();
      await nextHop.close();
      backends.close();
      await health?.close();
    },
  };
}
