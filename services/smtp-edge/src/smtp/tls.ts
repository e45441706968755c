import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Config } from '@smtpguard/config';
import type { Logger } from '@smtpguard/logging';
import { generate } from 'selfsigned';

export type TlsConfig = Config['edge']['tls'];

/** What smtp-server's secure contexts are built from. */
export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  sniOptions: Record<string, { key: Buffer; cert: Buffer }>;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** Generated at start (selfSigned), not from files. */
  selfSigned: boolean;
}

/** The TLS settings of a listener: its own, or the edge's. */
export function listenerTls(cfg: Config, listener: keyof Config['edge']['listeners']): TlsConfig {
  return cfg.edge.listeners[listener].tls ?? cfg.edge.tls;
}

export function hasCertificate(tls: TlsConfig): boolean {
  return Boolean(tls.certFile && tls.keyFile);
}

/** Every file a TLS config reads (to watch them). */
export function tlsFiles(tls: TlsConfig, resolve: (p: string) => string): string[] {
  if (!hasCertificate(tls)) return [];
  return [tls.certFile, tls.keyFile, ...Object.values(tls.sni).flatMap((f) => [f.certFile, f.keyFile])].map(
    resolve,
  );
}

const selfSignedCache = new Map<string, Promise<{ key: Buffer; cert: Buffer }>>();

/** A self-signed certificate for the host name, made once per process. */
function selfSigned(hostname: string): Promise<{ key: Buffer; cert: Buffer }> {
  let made = selfSignedCache.get(hostname);
  if (!made) {
    made = generate([{ name: 'commonName', value: hostname }], {
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] }],
    }).then((pems) => ({ key: Buffer.from(pems.private), cert: Buffer.from(pems.cert) }));
    selfSignedCache.set(hostname, made);
  }
  return made;
}

/**
 * Reads the certificate files of a TLS config; undefined when it names none (the listener offers no TLS).
 * A missing or unreadable file throws an error naming it.
 */
export async function loadTls(
  tls: TlsConfig,
  resolve: (p: string) => string,
  hostname: string,
): Promise<TlsMaterial | undefined> {
  const read = async (file: string) => {
    try {
      return await readFile(resolve(file));
    } catch (err) {
      throw new Error(`cannot read ${resolve(file)}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  };
  if (!hasCertificate(tls)) {
    if (!tls.selfSigned) return undefined;
    return { ...(await selfSigned(hostname)), sniOptions: {}, minVersion: tls.minVersion, selfSigned: true };
  }
  const sniOptions: TlsMaterial['sniOptions'] = {};
  for (const [name, files] of Object.entries(tls.sni)) {
    sniOptions[name] = { key: await read(files.keyFile), cert: await read(files.certFile) };
  }
  return {
    key: await read(tls.keyFile),
    cert: await read(tls.certFile),
    sniOptions,
    minVersion: tls.minVersion,
    selfSigned: false,
  };
}

/**
 * Calls onChange (debounced) when any of the files changes, including Kubernetes Secret volumes that swap a
 * symlink (hence the directories are watched). Returns a function that stops watching.
 */
export function watchFiles(files: string[], onChange: () => void, logger: Logger): () => void {
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  for (const dir of new Set(files.map((f) => dirname(f)))) {
    try {
      const w = watch(dir, () => {
        clearTimeout(timer);
        timer = setTimeout(onChange, 200);
      });
      w.unref();
      watchers.push(w);
    } catch (err) {
      logger.warn({ dir, err: (err as Error).message }, 'cannot watch the TLS files for changes');
    }
  }
  return () => {
    clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
