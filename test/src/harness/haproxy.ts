import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@smtpguard/testing';

export interface HaproxyBackend {
  port: number;
  /** Source address of HAProxy's connections to this backend (the edge's trusted proxy). */
  source: string;
}

export interface Haproxy<F extends string = string> {
  /** The port of each frontend. */
  ports: Record<F, number>;
  stop(): Promise<void>;
}

function haproxyBinary(): string {
  for (const p of ['/usr/sbin/haproxy', '/usr/bin/haproxy']) if (existsSync(p)) return p;
  const which = spawnSync('sh', ['-c', 'command -v haproxy']).stdout?.toString().trim();
  if (which) return which;
  throw new Error('haproxy not found: run `pnpm test:setup` (installs the Debian package haproxy)');
}

/**
 * A real HAProxy on 127.0.0.1 in TCP mode, one frontend per entry, each in front of its edge listeners, sending the
 * PROXY protocol (v2 by default) and balancing round-robin. Backends are health-checked (a TCP connect every
 * 500 ms), so a killed edge is taken out of rotation; a connection refused meanwhile is redispatched.
 */
export async function startHaproxy<F extends string>(
  frontends: Record<F, HaproxyBackend[]>,
  version: 1 | 2 = 2,
): Promise<Haproxy<F>> {
  const names = Object.keys(frontends) as F[];
  const ports = Object.fromEntries(
    await Promise.all(names.map(async (n) => [n, await freePort()])),
  ) as Record<F, number>;
  const dir = await mkdtemp(join(tmpdir(), 'sg-haproxy-'));
  const send = version === 2 ? 'send-proxy-v2' : 'send-proxy';
  const config = [
    'global',
    '  maxconn 4000',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  retries 3',
    '  option redispatch',
    ...names.flatMap((n) => [
      `frontend ${n}`,
      `  bind 127.0.0.1:${ports[n]}`,
      `  default_backend ${n}_edges`,
      `backend ${n}_edges`,
      '  balance roundrobin',
      ...frontends[n].map(
        (b, i) =>
          `  server edge${i} 127.0.0.1:${b.port} ${send} source ${b.source} check check-send-proxy inter 500 fall 1 rise 2`,
      ),
    ]),
    '',
  ].join('\n');
  await writeFile(join(dir, 'haproxy.cfg'), config);
  const child: ChildProcess = spawn(haproxyBinary(), ['-db', '-f', join(dir, 'haproxy.cfg')], {
    stdio: 'ignore',
  });
  const exited = new Promise((r) => child.once('exit', r));
  const first = ports[names[0] as F];
  await waitFor('haproxy to listen', async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited with code ${child.exitCode}`);
    return new Promise<boolean | undefined>((resolve) => {
      const s = tcpConnect(first, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(undefined));
    });
  });
  return {
    ports,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
