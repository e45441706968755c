import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashPassword } from '@smtpguard/auth';
import { type RunningSystem, SERVICES, type ServiceName, startSystem } from '@smtpguard/launcher';
import { freePort } from '@smtpguard/testing';
import { stringify } from 'yaml';

// Loosely typed on purpose: failure tests write invalid values, which the services must reject.
// biome-ignore lint/suspicious/noExplicitAny: values of any shape, checked by the services
export type LooseConfig = Record<string, any>;

export const ALICE = { user: 'alice@example.test', pass: 'correct horse battery' };

export interface TestSystem {
  system: RunningSystem;
  dir: string;
  configPath: string;
  mxPort: number;
  submissionPort: number;
  /** Each service's Prometheus scrape endpoint (http://127.0.0.1:PORT/metrics), with `metrics: true`. */
  metricsPorts: Partial<Record<ServiceName, number>>;
  stop(): Promise<void>;
}

export interface TestSystemOptions {
  natsUrl?: string;
  dnsServer: string;
  nextHopPort?: number;
  greylistDelaySeconds?: number;
  services?: ServiceName[];
  /** Extra environment for every service (OTEL_* variables). */
  env?: Record<string, string>;
  /** Serve each service's metrics on a free port (OTEL_METRICS_EXPORTER=prometheus). */
  metrics?: boolean;
  /** Deep-merged over the generated config (for failure tests). */
  override?: (config: LooseConfig) => void;
}

/** The test configuration: every port free on 127.0.0.1, example.test with alice, DNSBL zone dnsbl.test. */
export async function buildConfig(
  opts: TestSystemOptions,
): Promise<{ config: LooseConfig; mxPort: number; submissionPort: number }> {
  const [mx, sub, a, r, g] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const config: LooseConfig = {
    instance: 'e2e',
    logLevel: 'debug',
    stateDir: 'state',
    nats: { url: opts.natsUrl ?? '', connectTimeoutMs: 1000 },
    edge: {
      hostname: 'mx.example.test',
      allowInsecureAuth: true,
      // No greeting delay (pregreet test) unless a test sets one: every test would wait for it otherwise.
      listeners: {
        mx: { host: '127.0.0.1', port: mx, greetingDelayMs: 0 },
        submission: { host: '127.0.0.1', port: sub },
      },
      nextHop: opts.nextHopPort
        ? { type: 'smtp', host: '127.0.0.1', port: opts.nextHopPort, timeoutMs: 5000 }
        : { type: 'spool', dir: 'spool' },
      backends: {
        auth: { address: `127.0.0.1:${a}` },
        reputation: { address: `127.0.0.1:${r}` },
        greylist: { address: `127.0.0.1:${g}` },
      },
      shutdownGraceMs: 1000,
      checks: {},
    },
    auth: {
      listen: `127.0.0.1:${a}`,
      domains: [
        {
          name: 'example.test',
          mailboxes: [{ address: ALICE.user, passwordHash: await hashPassword(ALICE.pass) }],
          aliases: { postmaster: [ALICE.user] },
        },
      ],
    },
    reputation: {
      listen: `127.0.0.1:${r}`,
      dns: { servers: [opts.dnsServer], timeoutMs: 1000, tries: 1 },
      dnsbl: { zones: [{ zone: 'dnsbl.test' }] },
    },
    greylist: { listen: `127.0.0.1:${g}`, delaySeconds: opts.greylistDelaySeconds ?? 1 },
  };
  opts.override?.(config);
  return { config, mxPort: mx, submissionPort: sub };
}

export async function writeConfig(config: unknown): Promise<{ dir: string; configPath: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'sg-e2e-'));
  const configPath = join(dir, 'smtpguard.yaml');
  await writeFile(configPath, stringify(config));
  return { dir, configPath };
}

export async function startTestSystem(opts: TestSystemOptions): Promise<TestSystem> {
  const { config, mxPort, submissionPort } = await buildConfig(opts);
  const { dir, configPath } = await writeConfig(config);
  const metricsPorts: Partial<Record<ServiceName, number>> = {};
  const serviceEnv: Partial<Record<ServiceName, Record<string, string>>> = {};
  if (opts.metrics) {
    for (const name of SERVICES) {
      metricsPorts[name] = await freePort();
      serviceEnv[name] = {
        OTEL_METRICS_EXPORTER: 'prometheus',
        OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
        OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPorts[name]),
      };
    }
  }
  const system = await startSystem({
    configPath,
    services: opts.services,
    env: opts.env,
    serviceEnv,
    onLog: process.env.SMTPGUARD_TEST_LOGS ? (_l, raw) => process.stderr.write(`${raw}\n`) : undefined,
  });
  return { system, dir, configPath, mxPort, submissionPort, metricsPorts, stop: () => system.stop(5000) };
}

/** A message with CRLF line ends, as a real client sends it. */
export function testMessage(from: string, to: string, subject: string): string {
  return [
    `From: <${from}>`,
    `To: <${to}>`,
    `Subject: ${subject}`,
    `Message-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@client.example.net>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hello from the smtpguard end-to-end tests.',
    '.leading dot line stays intact',
    'Ümlauts and long lines stay byte for byte.',
    '',
  ].join('\r\n');
}
