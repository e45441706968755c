// `pnpm start`: the whole system on one machine, with the embedded defaults of the given config file.
import { readFileSync } from 'node:fs';
import { configPathFromArgs, loadConfig } from '@smtpguard/config';
import { prometheusEnv, SERVICES, startSystem } from './system.js';

// Where `pnpm start` serves each service's metrics, unless OTEL_METRICS_EXPORTER says otherwise.
const PROMETHEUS_HOST = '127.0.0.1';
const PROMETHEUS_FIRST_PORT = 9464;

async function main(): Promise<void> {
  const path = configPathFromArgs();
  const loaded = await loadConfig(path); // fail here, once, with the key and the problem
  const c = loaded.config;
  const scrape = !process.env.OTEL_METRICS_EXPORTER;
  const system = await startSystem({
    configPath: loaded.file,
    serviceEnv: scrape ? prometheusEnv(PROMETHEUS_HOST, PROMETHEUS_FIRST_PORT) : undefined,
    onLog: (_line, raw) => process.stdout.write(`${raw}\n`),
  });
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
      ? `  metrics (Prometheus)       ${SERVICES.map((s, i) => `${s} http://${PROMETHEUS_HOST}:${PROMETHEUS_FIRST_PORT + i}/metrics`).join('  ')}`
      : '',
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
  for (const s of system.services.values()) {
    void s.exited.then((code) => {
      if (stopping) return;
      process.stderr.write(`smtpguard: ${s.name} exited unexpectedly (code ${code}); stopping the rest\n`);
      stopping = true;
      void system.stop().then(() => process.exit(1));
    });
  }
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
