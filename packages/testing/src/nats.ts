import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect, freePort, waitFor } from './ports.js';

export interface NatsServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

function natsBinary(): string {
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'])
    if (existsSync(p)) return p;
  const which = spawnSync('sh', ['-c', 'command -v nats-server']).stdout?.toString().trim();
  if (which) return which;
  throw new Error('nats-server not found: run `pnpm test:setup` (installs the Debian package nats-server)');
}

/** A real nats-server with JetStream on 127.0.0.1 (a fixed port, or a free one), storage in a temp dir. */
export async function startNats(fixedPort?: number): Promise<NatsServer> {
  const port = fixedPort ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'sg-nats-'));
  const child: ChildProcess = spawn(
    natsBinary(),
    ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir],
    {
      stdio: 'ignore',
    },
  );
  const exited = new Promise((r) => child.once('exit', r));
  await waitFor('nats-server to accept connections', async () => {
    if (child.exitCode !== null) throw new Error(`nats-server exited with code ${child.exitCode}`);
    return (await canConnect(port)) || undefined;
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface NatsNode {
  port: number;
  url: string;
  /** The node's HTTP monitoring endpoint (/varz, /jsz, /healthz). */
  monitorUrl: string;
  /** Whether the node's process is running. */
  readonly running: boolean;
  /** SIGKILL (the node's data stays; restart() brings it back). */
  kill(): Promise<void>;
  /** Starts the node again; resolves once its JetStream is current with the cluster. */
  restart(): Promise<void>;
}

export interface NatsCluster {
  /** Every node's URL, comma-separated (as nats.url takes them). */
  url: string;
  nodes: NatsNode[];
  stop(): Promise<void>;
}

/**
 * A real NATS cluster of `size` nats-server processes on 127.0.0.1, routes between them, JetStream on each (its own
 * storage directory), so that streams and KV buckets can have `size` replicas and survive the loss of a node.
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = await Promise.all(Array.from({ length: size }, () => freePort()));
  const monitors = await Promise.all(Array.from({ length: size }, () => freePort()));
  const dir = await mkdtemp(join(tmpdir(), 'sg-nats-cluster-'));
  const routeUrls = routes.map((r) => `nats://127.0.0.1:${r}`).join(',');
  const starts: (() => Promise<void>)[] = [];
  const ready: (() => Promise<void>)[] = [];
  const nodes: NatsNode[] = ports.map((port, i) => {
    let child: ChildProcess | undefined;
    let exited: Promise<unknown> = Promise.resolve();
    const start = async () => {
      child = spawn(
        natsBinary(),
        [
          '-a',
          '127.0.0.1',
          '-p',
          String(port),
          '-n',
          `node-${i}`,
          '-js',
          '-sd',
          join(dir, `node-${i}`),
          '--cluster_name',
          'smtpguard-test',
          '--cluster',
          `nats://127.0.0.1:${routes[i]}`,
          '--routes',
          routeUrls,
          '-m',
          String(monitors[i]),
        ],
        { stdio: 'ignore' },
      );
      const c = child;
      exited = new Promise((r) => c.once('exit', r));
      await waitFor(`nats-server node-${i} to accept connections`, async () => {
        if (c.exitCode !== null) throw new Error(`nats-server node-${i} exited with code ${c.exitCode}`);
        return (await canConnect(port)) || undefined;
      });
    };
    // Healthy: JetStream is up and current with the cluster's meta leader (nats-server's /healthz).
    ready.push(() =>
      waitFor(
        `nats-server node-${i} JetStream to be current with the cluster`,
        async () => {
          const r = await fetch(`http://127.0.0.1:${monitors[i]}/healthz`).catch(() => undefined);
          return r?.ok || undefined;
        },
        30_000,
      ).then(() => undefined),
    );
    starts.push(start);
    return {
      port,
      url: `nats://127.0.0.1:${port}`,
      monitorUrl: `http://127.0.0.1:${monitors[i]}`,
      get running() {
        return Boolean(child && child.exitCode === null && child.signalCode === null);
      },
      async kill() {
        if (child && child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
      },
      async restart() {
        await start();
        await ready[i]?.();
      },
    };
  });
  await Promise.all(starts.map((start) => start()));
  await Promise.all(ready.map((r) => r()));
  return {
    url: nodes.map((n) => n.url).join(','),
    nodes,
    async stop() {
      await Promise.all(nodes.map((n) => n.kill()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
