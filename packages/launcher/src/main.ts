// `pnpm start`: the whole system on one machine, with the embedded defaults of the given config file. By default
// the four services run in this one process (`--processes one`); `--processes per-service` starts each as a
// child process instead, as they run in Kubernetes (docs/performance.md, "One process").
import { readFileSync } from 'node:fs';
import { configPathFromArgs, type LoadedConfig, loadConfig } from '@smtpguard/config';
import { prometheusEnv, SERVICES, startSystem } from './system.js';

// Where `pnpm start` serves each service's metrics, unless OTEL_METRICS_EXPORTER says otherwise.
const PROMETHEUS_HOST = '127.0.0.1';
const PROMETHEUS_FIRST_PORT = 9464;

async function main(): Promise<void> {
  const path = configPathFromArgs();
  const loaded = await loadConfig(path); // fail here, once, with the key and the problem
  const c = loaded.config;
  const scrape = !process.env.OTEL_METRICS_EXPORTER;
  const mode = processesFromArgs();
  const system = mode === 'one' ? await startHere(loaded, scrape) : await startChildren(loaded, scrape);
  const l = c.edge.listeners;
  const hop = c.edge.nextHop;
  const lines = [
    '',
    'smtpguard is running (Ctrl-C stops it):',
    l.mx.enabled ? `  MX (inbound mail)          smtp://${l.mx.host}:${l.mx.port}` : '',
    l.submission.enabled
      ? `  submission (AUTH required) smtp://${l.submission.host}:${l.submission.port}`
      : '',
    `  auth / reputation / greylist gRPC  ${c.auth.listen}  ${c.reputation.listen}  ${c.greylist.listen}`,
    `  accepted mail              ${hop.type === 'spool' ? `${loaded.statePath(hop.dir)}/new` : `${hop.type}://${hop.host}:${hop.port}`}`,
    `  decisions                  ${c.nats.url ? `NATS ${c.nats.url} stream ${c.nats.decisionStream}` : loaded.statePath(c.decisions.file)}`,
    scrape
      ? mode === 'one'
        ? `  metrics (Prometheus)       http://${PROMETHEUS_HOST}:${PROMETHEUS_FIRST_PORT}/metrics`
        : `  metrics (Prometheus)       ${SERVICES.map((s, i) => `${s} http://${PROMETHEUS_HOST}:${PROMETHEUS_FIRST_PORT + i}/metrics`).join('  ')}`
      : '',
    `  processes                  ${mode === 'one' ? `one (pid ${process.pid})` : 'one per service'}`,
    `  config                     ${loaded.file}`,
    '',
  ].filter((x) => x !== '');
  process.stdout.write(`${lines.join('\n')}\n\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void system.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // `npx pnpm start` puts several wrappers above this process (npm exec, sh, node shims, pnpm) and not all of
  // them pass a signal on or exit with their parent: when any process that started us is gone (killed without
  // telling us), stop too, rather than leave the services running with nobody to stop them.
  const ancestors = ancestorPids();
  const watch = setInterval(() => {
    const gone = ancestors.find((pid) => !isAlive(pid));
    if (gone === undefined) return;
    clearInterval(watch);
    process.stderr.write(`smtpguard: process ${gone}, which started this one, is gone; stopping\n`);
    stop();
  }, 500);
  watch.unref();
  system.onUnexpectedExit((why) => {
    if (stopping) return;
    process.stderr.write(`smtpguard: ${why}; stopping the rest\n`);
    stopping = true;
    void system.stop().then(() => process.exit(1));
  });
}

interface Started {
  stop(): Promise<void>;
  /** Called when a part of the system ends without being told to. */
  onUnexpectedExit(listener: (why: string) => void): void;
}

/** `--processes one` (the default) or `--processes per-service`. */
function processesFromArgs(argv = process.argv.slice(2)): 'one' | 'per-service' {
  const i = argv.indexOf('--processes');
  const v = i >= 0 ? argv[i + 1] : 'one';
  if (v === 'one' || v === 'per-service') return v;
  throw new Error(`--processes must be "one" or "per-service", not "${v}"`);
}

/** The four services in this process; telemetry is started first, before any service code is imported. */
async function startHere(loaded: LoadedConfig, scrape: boolean): Promise<Started> {
  process.env.OTEL_SERVICE_NAME ??= 'smtpguard';
  if (scrape) {
    process.env.OTEL_METRICS_EXPORTER = 'prometheus';
    process.env.OTEL_EXPORTER_PROMETHEUS_HOST = PROMETHEUS_HOST;
    process.env.OTEL_EXPORTER_PROMETHEUS_PORT = String(PROMETHEUS_FIRST_PORT);
  }
  await import('@smtpguard/telemetry/register');
  const { startOneProcess } = await import('./one-process.js');
  const running = await startOneProcess(loaded);
  return {
    async stop() {
      running.logger.info('shutting down');
      await running.stop();
      running.logger.info('stopped');
    },
    onUnexpectedExit: () => undefined,
  };
}

/** Each service as a child process of this one, its log lines passed on to stdout. */
async function startChildren(loaded: LoadedConfig, scrape: boolean): Promise<Started> {
  const system = await startSystem({
    configPath: loaded.file,
    serviceEnv: scrape ? prometheusEnv(PROMETHEUS_HOST, PROMETHEUS_FIRST_PORT) : undefined,
    onLog: (_line, raw) => process.stdout.write(`${raw}\n`),
  });
  return {
    stop: () => system.stop(),
    onUnexpectedExit(listener) {
      for (const s of system.services.values()) {
        void s.exited.then((code) => listener(`${s.name} exited unexpectedly (code ${code})`));
      }
    },
  };
}

/** This process's parent, its parent, ... up to (not including) init; just the parent where /proc is missing. */
function ancestorPids(): number[] {
  const out: number[] = [];
  let pid = process.ppid;
  while (pid > 1 && out.length < 64) {
    out.push(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return out;
}

/** Running (a zombie, dead but not yet reaped by its parent, counts as gone). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
}

main().catch((err: Error) => {
  process.stderr.write(`smtpguard: ${err.message}\n`);
  process.exit(1);
});
