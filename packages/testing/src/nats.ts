import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './ports.js';

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

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

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
