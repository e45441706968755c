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

export interface Haproxy {
  port: number;
  stop(): Promise<void>;
}

function haproxyBinary(): string {
  for (const p of ['/usr/sbin/haproxy', '/usr/bin/haproxy']) if (existsSync(p)) return p;
  const which = spawnSync('sh', ['-c', 'command -v haproxy']).stdout?.toString().trim();
  if (which) return which;
  throw new Error('haproxy not found: run `pnpm test:setup` (installs the Debian package haproxy)');
}

/**
 * A real HAProxy on 127.0.0.1 in TCP mode in front of the given edge listeners, sending the PROXY protocol (v2 by
 * default) and balancing round-robin; health checks off, so a killed backend is only noticed by failed connects.
 */
export async function startHaproxy(backends: HaproxyBackend[], version: 1 | 2 = 2): Promise<Haproxy> {
  const port = await freePort();
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
    'frontend smtp',
    `  bind 127.0.0.1:${port}`,
    '  default_backend edges',
    'backend edges',
    '  balance roundrobin',
    ...backends.map((b, i) => `  server edge${i} 127.0.0.1:${b.port} ${send} source ${b.source}`),
    '',
  ].join('\n');
  await writeFile(join(dir, 'haproxy.cfg'), config);
  const child: ChildProcess = spawn(haproxyBinary(), ['-db', '-f', join(dir, 'haproxy.cfg')], {
    stdio: 'ignore',
  });
  const exited = new Promise((r) => child.once('exit', r));
  await waitFor('haproxy to listen', async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited with code ${child.exitCode}`);
    return new Promise<boolean | undefined>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(undefined));
    });
  });
  return {
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
