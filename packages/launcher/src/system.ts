import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const SERVICES = ['auth', 'reputation', 'greylist', 'smtp-edge'] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface LogLine {
  service?: string;
  level?: string;
  msg?: string;
  [key: string]: unknown;
}

export interface SystemOptions {
  configPath: string;
  services?: readonly ServiceName[];
  /** Extra environment for every service (e.g. OTEL_EXPORTER_OTLP_ENDPOINT). */
  env?: Record<string, string>;
  /** Environment for one service on top of env (e.g. its own OTEL_EXPORTER_PROMETHEUS_PORT). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Receives every log line of every service (JSON-parsed when possible). */
  onLog?: (line: LogLine, raw: string) => void;
  /** Time a service gets to log that it started. */
  startTimeoutMs?: number;
}

export interface RunningService {
  name: ServiceName;
  child: ChildProcess;
  /** Resolves with the exit code when the process ends. */
  exited: Promise<number | null>;
}

export interface RunningSystem {
  services: Map<ServiceName, RunningService>;
  /** Every log line so far, in arrival order. */
  logs: LogLine[];
  /** SIGTERM to each service, SIGKILL after timeoutMs. */
  stop(timeoutMs?: number): Promise<void>;
}

const serviceMain = (name: ServiceName) =>
  fileURLToPath(new URL(`../../../services/${name}/dist/main.js`, import.meta.url));
const telemetryPreload = new URL('../../telemetry/dist/register.js', import.meta.url).href;

/** Starts one service process; resolves once it logged "<name> started", rejects if it exits first. */
export function startService(
  name: ServiceName,
  opts: SystemOptions,
  logs: LogLine[],
  /** Receives the child as soon as it is spawned (to stop it when another service fails to start). */
  spawned?: (child: ChildProcess) => void,
): Promise<RunningService> {
  const child = spawn(
    process.execPath,
    ['--import', telemetryPreload, serviceMain(name), '--config', opts.configPath],
    {
      env: {
        ...process.env,
        OTEL_SERVICE_NAME: `smtpguard-${name}`,
        ...opts.env,
        ...opts.serviceEnv?.[name],
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  spawned?.(child);
  const stderr: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start within ${opts.startTimeoutMs ?? 20_000} ms`));
    }, opts.startTimeoutMs ?? 20_000);
    const onLine = (raw: string) => {
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
      } catch {
        line = { service: name, msg: raw };
      }
      logs.push(line);
      opts.onLog?.(line, raw);
      if (line.msg === `${name} started`) {
        clearTimeout(timer);
        resolve({ name, child, exited });
      }
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', (raw) => {
      stderr.push(raw);
      onLine(raw);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with code ${code} before it started: ${stderr.join('\n')}`));
    });
  });
}

async function stopService(s: RunningService, timeoutMs: number): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), timeoutMs);
  await s.exited;
  clearTimeout(timer);
}

/**
 * Environment that gives each service a Prometheus scrape endpoint (the SDK's own OTEL_METRICS_EXPORTER and
 * OTEL_EXPORTER_PROMETHEUS_* variables): http://host:port/metrics, ports from firstPort in the order of SERVICES.
 */
export function prometheusEnv(
  host: string,
  firstPort: number,
  exporters = 'prometheus',
): Record<ServiceName, Record<string, string>> {
  const env = {} as Record<ServiceName, Record<string, string>>;
  SERVICES.forEach((name, i) => {
    env[name] = {
      OTEL_METRICS_EXPORTER: exporters,
      OTEL_EXPORTER_PROMETHEUS_HOST: host,
      OTEL_EXPORTER_PROMETHEUS_PORT: String(firstPort + i),
    };
  });
  return env;
}

/** Starts the services (backends first, then the edge) as child processes of this one. */
export async function startSystem(opts: SystemOptions): Promise<RunningSystem> {
  const logs: LogLine[] = [];
  const services = new Map<ServiceName, RunningService>();
  const wanted = opts.services ?? SERVICES;
  const system: RunningSystem = {
    services,
    logs,
    async stop(timeoutMs = 15_000) {
      const edge = services.get('smtp-edge');
      if (edge) await stopService(edge, timeoutMs);
      await Promise.all([...services.values()].map((s) => stopService(s, timeoutMs)));
    },
  };
  const children: ChildProcess[] = [];
  const spawned = (c: ChildProcess) => children.push(c);
  try {
    const backends = wanted.filter((n) => n !== 'smtp-edge');
    for (const s of await Promise.all(backends.map((n) => startService(n, opts, logs, spawned))))
      services.set(s.name, s);
    if (wanted.includes('smtp-edge'))
      services.set('smtp-edge', await startService('smtp-edge', opts, logs, spawned));
  } catch (err) {
    await system.stop(2000);
    // Services still starting when another one failed are not in `services`: stop them too, or they are left
    // running with nobody to stop them.
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const timer = setTimeout(() => c.kill('SIGKILL'), 2000);
            c.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    throw err;
  }
  return system;
}
