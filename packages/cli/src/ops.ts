import { connect as tcpConnect } from 'node:net';
import { connect as natsConnect } from '@nats-io/transport-node';
import { type Config, ConfigError, loadConfig, parseConfig } from '@smtpguard/config';
import { healthCheck } from '@smtpguard/grpc-kit';
import { takeFlag } from './flags.js';

export const opsUsage = `  config check FILE [-n] [--json]
                             validate a config file (exit 1 naming each bad key); -n: print the settings that
                             differ from the defaults, one "key = value" a line
  status [--json]            is each part up: auth, reputation, greylist (grpc.health.v1), the edge's listeners
                             (a greeting), NATS (with nats.url); exit 1 when one is not`;

type Flat = Record<string, unknown>;

/** "a.b.c" → value, for plain objects; arrays and scalars are values. */
function flatten(value: unknown, prefix = '', out: Flat = {}): Flat {
  if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out[prefix] = value;
  }
  return out;
}

/** The settings of c that differ from the defaults (postconf -n). */
export function nonDefaults(c: Config): Flat {
  const defaults = flatten(parseConfig('{}', 'defaults'));
  const out: Flat = {};
  for (const [k, v] of Object.entries(flatten(c))) {
    if (JSON.stringify(v) !== JSON.stringify(defaults[k])) out[k] = v;
  }
  return out;
}

const redact = (key: string, value: unknown) => (/password/i.test(key) ? '[redacted]' : value);

/** `smtpguard config check FILE [-n] [--json]`. */
export async function configCommand(args: string[], out: (line: string) => void): Promise<number> {
  const json = takeFlag(args, '--json');
  const n = takeFlag(args, '-n');
  const [sub, file] = args;
  if (sub !== 'check' || !file) {
    out(`usage:\n${opsUsage}`);
    return 2;
  }
  try {
    const loaded = await loadConfig(file);
    // Password hashes are not printed, wherever they are (auth.domains[].mailboxes[].passwordHash).
    const settings = n ? (JSON.parse(JSON.stringify(nonDefaults(loaded.config), redact)) as Flat) : undefined;
    if (json) {
      out(
        JSON.stringify({ file: loaded.file, valid: true, problems: [], ...(settings ? { settings } : {}) }),
      );
    } else if (settings) {
      for (const [k, v] of Object.entries(settings)) out(`${k} = ${JSON.stringify(v)}`);
    } else {
      out(`${loaded.file}: valid`);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (json) out(JSON.stringify({ file: err.file, valid: false, problems: err.problems }));
    else out(err.message);
    return 1;
  }
}

interface Part {
  part: string;
  address: string;
  ok: boolean;
  status: string;
}

/** Connects and reads the greeting (the edge answers 220 after its connect checks). */
function greeting(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    let data = '';
    const done = (status: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(status);
    };
    const timer = setTimeout(() => done('no greeting in time'), timeoutMs);
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      if (data.includes('\r\n')) {
        socket.end('QUIT\r\n');
        done(data.split('\r\n')[0] ?? '');
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

/** `smtpguard status [--json]`. */
export async function statusCommand(
  args: string[],
  configPath: string,
  out: (line: string) => void,
): Promise<number> {
  const json = takeFlag(args, '--json');
  const c = (await loadConfig(configPath)).config;
  const timeoutMs = 3000;
  const checks: Array<Promise<Part>> = (['auth', 'reputation', 'greylist'] as const).map(async (part) => {
    const address = c[part].listen;
    const status = await healthCheck(address, timeoutMs);
    return { part, address, ok: status === 'SERVING', status };
  });
  for (const [name, l] of Object.entries(c.edge.listeners)) {
    if (!l.enabled) continue;
    const host = l.host === '0.0.0.0' || l.host === '::' ? '127.0.0.1' : l.host;
    checks.push(
      greeting(host, l.port, timeoutMs).then((status) => ({
        part: `smtp-edge ${name}`,
        address: `${host}:${l.port}`,
        ok: status.startsWith('220'),
        status,
      })),
    );
  }
  if (c.nats.url) {
    checks.push(
      natsConnect({
        servers: c.nats.url.split(',').map((s) => s.trim()),
        timeout: timeoutMs,
        name: 'smtpguard-status',
      })
        .then(async (nc) => {
          const server = nc.info?.version ?? '';
          await nc.close();
          return { part: 'nats', address: c.nats.url, ok: true, status: `connected (nats-server ${server})` };
        })
        .catch((err: Error) => ({ part: 'nats', address: c.nats.url, ok: false, status: err.message })),
    );
  }
  const parts = await Promise.all(checks);
  if (json) out(JSON.stringify(parts));
  else
    for (const p of parts)
      out([p.ok ? 'ok  ' : 'DOWN', p.part.padEnd(22), p.address.padEnd(22), p.status].join(' '));
  return parts.every((p) => p.ok) ? 0 : 1;
}
