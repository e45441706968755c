import { watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'yaml';
import type { z } from 'zod';
import { type Config, configSchema } from './schema.js';

export type { BackendConfig, Config, FailureMode } from './schema.js';
export { CORE_COMMANDS, configSchema, OPTIONAL_COMMANDS } from './schema.js';

/** A config file that cannot be used; the message names the file, the key and the problem. */
/** The NATS servers of nats.url (comma-separated); empty when NATS is not configured. */
export function natsServers(config: Pick<Config, 'nats'>): string[] {
  return config.nats.url
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadedConfig {
  /** Absolute path of the file. */
  file: string;
  config: Config;
  /** Resolves a path from the config against stateDir (which itself is relative to the file). */
  statePath(p: string): string;
}

function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const key = issue.path.length ? issue.path.join('.') : '(top level)';
    if (issue.code === 'unrecognized_keys') {
      const where = issue.path.length ? `${key}: ` : '';
      return `${where}unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    }
    return `${key}: ${issue.message}`;
  });
}

/** Parses and validates config text. Throws ConfigError naming each bad key. */
export function parseConfig(text: string, file = '<inline>'): Config {
  let raw: unknown;
  try {
    raw = parse(text, { prettyErrors: true }) ?? {};
  } catch (err) {
    throw new ConfigError(file, [`not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(file, formatIssues(result.error.issues));
  return result.data;
}

export async function loadConfig(path: string): Promise<LoadedConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? err}`]);
  }
  const config = parseConfig(text, file);
  const stateDir = isAbsolute(config.stateDir) ? config.stateDir : resolve(dirname(file), config.stateDir);
  return { file, config, statePath: (p) => (isAbsolute(p) ? p : resolve(stateDir, p)) };
}

/** The path given with --config, else $SMTPGUARD_CONFIG. */
export function configPathFromArgs(argv = process.argv.slice(2)): string {
  const i = argv.indexOf('--config');
  const path = i >= 0 ? argv[i + 1] : process.env.SMTPGUARD_CONFIG;
  if (!path) throw new ConfigError('(none)', ['no config file: pass --config FILE or set SMTPGUARD_CONFIG']);
  return path;
}

/**
 * Holds the current config and reloads it when the file changes (including Kubernetes ConfigMap
 * symlink swaps, hence watching the directory). A changed file that does not validate is reported
 * through onError and the previous config stays in force.
 */
export class ConfigHandle {
  private listeners: Array<(c: LoadedConfig) => void> = [];
  private watcher: ReturnType<typeof watch> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(public current: LoadedConfig) {}

  onChange(listener: (c: LoadedConfig) => void): void {
    this.listeners.push(listener);
  }

  watch(onError: (err: Error) => void): void {
    this.watcher = watch(dirname(this.current.file), () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.reload().catch(onError), 200);
    });
    this.watcher.unref();
  }

  async reload(): Promise<boolean> {
    const next = await loadConfig(this.current.file);
    if (JSON.stringify(next.config) === JSON.stringify(this.current.config)) return false;
    this.current = next;
    for (const l of this.listeners) l(next);
    return true;
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
  }
}
