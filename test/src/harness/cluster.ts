import { type LogLine, type RunningService, type ServiceName, startService } from '@smtpguard/launcher';
import {
  type CapturedMessage,
  type CaptureServer,
  freePort,
  type NatsCluster,
  startCaptureServer,
  startNatsCluster,
} from '@smtpguard/testing';
import { type DnsServer, startDnsServer } from './dns-server.js';
import { type Haproxy, startHaproxy } from './haproxy.js';
import { buildConfig, type LooseConfig, writeConfig } from './system.js';

/** The address HAProxy connects to the edges from: the edges' only trusted load balancer. */
export const LOAD_BALANCER = '127.0.0.99';

export interface ClusterOptions {
  /** Replicas of auth, reputation and greylist each (default 2). */
  replicas?: number;
  /** smtp-edge replicas behind HAProxy (default 2). */
  edges?: number;
  greylistDelaySeconds?: number;
  /** Changes to the shared config (every process gets it). */
  override?: (config: LooseConfig) => void;
}

/** One process of the cluster, e.g. "greylist-2", killed and started again by tests. */
export interface ClusterProcess {
  name: string;
  service: ServiceName;
  readonly running: boolean;
  /** SIGKILL: no shutdown, nothing flushed (what a crashed node or an OOM kill does). */
  kill(): Promise<void>;
  /** Starts it again with the same config and state directory; resolves once it logged that it started. */
  start(): Promise<void>;
  /** SIGTERM (a clean shutdown), SIGKILL after timeoutMs. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface Cluster {
  nats: NatsCluster;
  dns: DnsServer;
  nextHop: CaptureServer;
  /** Every message the next hop accepted, also before it was stopped and started again. */
  delivered(): CapturedMessage[];
  /** Stops the next hop (its open connections dropped) until startNextHop(). */
  stopNextHop(): Promise<void>;
  startNextHop(): Promise<void>;
  haproxy: Haproxy<'mx' | 'submission'>;
  processes: ClusterProcess[];
  process(name: string): ClusterProcess;
  /** Every log line of every process, in arrival order. */
  logs: LogLine[];
  stop(): Promise<void>;
}

const onLog = process.env.SMTPGUARD_TEST_LOGS
  ? (_l: LogLine, raw: string) => process.stderr.write(`${raw}\n`)
  : undefined;

/**
 * The whole system as a cluster on one machine, every part real: a 3-node NATS cluster (decision stream and
 * greylist KV with 3 replicas), `replicas` processes of each backend service (own port, instance name and state
 * directory each), `edges` smtp-edge processes that reach the replicas through address lists, and HAProxy in
 * front of the edges sending the PROXY protocol, health-checking them. The next hop is a capture server on a
 * fixed port, so it can be stopped and started again.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const replicas = opts.replicas ?? 2;
  const edgeCount = opts.edges ?? 2;
  const logs: LogLine[] = [];
  const nats = await startNatsCluster(3);
  const dns = await startDnsServer({});
  let nextHop = await startCaptureServer();
  const earlier: CapturedMessage[] = [];
  const nextHopPort = nextHop.port;
  const { config: base } = await buildConfig({
    natsUrl: nats.url,
    dnsServer: dns.address,
    nextHopPort,
    greylistDelaySeconds: opts.greylistDelaySeconds ?? 1,
  });
  // Creating replicated streams on a cluster that just formed takes a moment.
  base.nats = { ...base.nats, decisionReplicas: 3, connectTimeoutMs: 5000 };
  base.greylist.store = { type: 'nats-kv', replicas: 3, bucketPrefix: 'cluster_greylist' };
  // Lockout, POP-before-SMTP logins and sending counters shared by the auth replicas, as in production.
  base.auth.store = { ...base.auth.store, type: 'nats-kv', replicas: 3, bucketPrefix: 'cluster_auth' };
  base.edge.listeners.mx.proxyProtocol = { trustedProxies: [LOAD_BALANCER] };
  base.edge.listeners.submission.proxyProtocol = { trustedProxies: [LOAD_BALANCER] };
  // Every client of the tests is 127.0.0.1: no per-client limits.
  for (const l of ['mx', 'submission']) {
    Object.assign(base.edge.listeners[l], { maxConnectionsPerClient: 0, connectionsPerClientPerMinute: 0 });
  }
  opts.override?.(base);

  const ports = async () => Promise.all(Array.from({ length: replicas }, () => freePort()));
  const backendPorts = { auth: await ports(), reputation: await ports(), greylist: await ports() };
  const list = (p: number[]) => p.map((x) => `127.0.0.1:${x}`).join(',');
  for (const s of ['auth', 'reputation', 'greylist'] as const) {
    base.edge.backends[s] = { ...base.edge.backends[s], address: list(backendPorts[s]) };
  }

  const processes: ClusterProcess[] = [];
  const add = async (service: ServiceName, name: string, config: LooseConfig) => {
    const { configPath } = await writeConfig(config);
    let running: RunningService | undefined;
    const alive = () =>
      Boolean(running && running.child.exitCode === null && running.child.signalCode === null);
    processes.push({
      name,
      service,
      get running() {
        return alive();
      },
      async start() {
        running = await startService(service, { configPath, onLog }, logs);
      },
      async kill() {
        if (!running || !alive()) return;
        running.child.kill('SIGKILL');
        await running.exited;
      },
      async stop(timeoutMs = 5000) {
        if (!running || !alive()) return;
        running.child.kill('SIGTERM');
        const timer = setTimeout(() => running?.child.kill('SIGKILL'), timeoutMs);
        await running.exited;
        clearTimeout(timer);
      },
    });
  };
  for (const s of ['auth', 'reputation', 'greylist'] as const) {
    for (let i = 0; i < replicas; i++) {
      const port = backendPorts[s][i];
      await add(s, `${s}-${i + 1}`, {
        ...base,
        instance: `${s}-${i + 1}`,
        [s]: { ...base[s], listen: `127.0.0.1:${port}` },
      });
    }
  }
  const edgePorts: { mx: number; submission: number }[] = [];
  for (let i = 0; i < edgeCount; i++) {
    const [mx, submission] = [await freePort(), await freePort()];
    edgePorts.push({ mx, submission });
    const listeners = structuredClone(base.edge.listeners);
    listeners.mx.port = mx;
    listeners.submission.port = submission;
    await add('smtp-edge', `smtp-edge-${i + 1}`, {
      ...base,
      instance: `smtp-edge-${i + 1}`,
      edge: { ...base.edge, listeners },
    });
  }

  const cluster: Cluster = {
    nats,
    dns,
    get nextHop() {
      return nextHop;
    },
    delivered() {
      return [...earlier, ...nextHop.messages];
    },
    async stopNextHop() {
      nextHop.dropConnections();
      await nextHop.close();
      earlier.push(...nextHop.messages);
    },
    async startNextHop() {
      nextHop = await startCaptureServer({ port: nextHopPort });
    },
    haproxy: undefined as unknown as Haproxy<'mx' | 'submission'>,
    processes,
    process(name) {
      const p = processes.find((x) => x.name === name);
      if (!p) throw new Error(`no process ${name} in the cluster`);
      return p;
    },
    logs,
    async stop() {
      await cluster.haproxy?.stop();
      const edges = processes.filter((p) => p.service === 'smtp-edge');
      await Promise.all(edges.map((p) => p.stop()));
      await Promise.all(processes.filter((p) => p.service !== 'smtp-edge').map((p) => p.stop()));
      await nextHop.close().catch(() => undefined);
      await dns.close();
      await nats.stop();
    },
  };
  try {
    await Promise.all(processes.filter((p) => p.service !== 'smtp-edge').map((p) => p.start()));
    await Promise.all(processes.filter((p) => p.service === 'smtp-edge').map((p) => p.start()));
    cluster.haproxy = await startHaproxy({
      mx: edgePorts.map((p) => ({ port: p.mx, source: LOAD_BALANCER })),
      submission: edgePorts.map((p) => ({ port: p.submission, source: LOAD_BALANCER })),
    });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
