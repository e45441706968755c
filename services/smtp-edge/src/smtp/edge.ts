import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import type { Config, ConfigHandle } from '@smtpguard/config';
import type { Logger } from '@smtpguard/logging';
import { NetworkList, plainIp } from '@smtpguard/networks';
import { formatReply } from '@smtpguard/reasons';
import { startSpan } from '@smtpguard/telemetry';
import { LRUCache } from 'lru-cache';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { DataFacts } from '../data/inspector.js';
import type { NextHop } from '../delivery/next-hop.js';
import { isReplyError } from '../engine/reply.js';
import type { PhaseLists, Runner } from '../engine/runner.js';
import { type ListenerName, Session } from '../session.js';
import { EdgeConnection, type EdgeHost } from './connection.js';
import type { ConnectionTracker } from './limits.js';
import { readProxyHeader } from './proxy-protocol.js';
import { listenerTls, loadTls, type TlsMaterial, tlsFiles, watchFiles } from './tls.js';

export interface ListenAddress {
  listener: ListenerName;
  host: string;
  port: number;
}

/** A listener's TLS: what it was loaded from, and the watcher of its files. */
interface ListenerTls {
  material: TlsMaterial | undefined;
  key: string;
  stopWatching: () => void;
}

const LISTENERS = ['mx', 'submission', 'submissions'] as const;

// smtp-server commands the edge never offers (proxy commands, sendmail's debugging jokes).
const DISABLED = ['XCLIENT', 'XFORWARD', 'WIZ', 'SHELL', 'KILL'];
// A refused connection gets this long to read its 421 before the socket is destroyed.
const REFUSAL_LINGER_MS = 1000;
// Clients remembered as having passed the pregreet test (postscreen's cache); oldest forgotten first.
const PREGREET_CACHE_ENTRIES = 100_000;

/** What the PROXY handling tells smtp-server about a connection (its id, and the real client when proxied). */
type ProxiedSocket = SMTPConnectionOptions & { id: string };

/** A session id as smtp-server makes them: 80 random bits in base 32. */
function sessionId(): string {
  return BigInt(`0x${randomBytes(10).toString('hex')}`)
    .toString(32)
    .padStart(16, '0');
}

/** One listener: smtp-server, with the edge creating the connections (after the connect phase). */
class EdgeServer extends SMTPServer {
  constructor(
    options: SMTPServerOptions,
    readonly listener: ListenerName,
    private readonly edge: Edge,
  ) {
    super(options);
  }

  override connect(socket: Socket, socketOptions?: SMTPConnectionOptions | null): void {
    this.edge.accept(this, socket, socketOptions ?? {});
  }

  /** Replaces smtp-server's PROXY handling (v1 only, no refusals) with the edge's (v1 and v2, trusted peers). */
  override _handleProxy(
    socket: Socket,
    callback: (err: Error | null, socketOptions?: ProxiedSocket) => void,
  ): void {
    this.edge.handleProxy(this, socket, callback);
  }
}

/**
 * The SMTP listeners (MX and submission). A new connection first runs the connect phase (limits, trusted
 * networks, the reputation lookup in the background); only an admitted one becomes an EdgeConnection. On stop,
 * the listeners close, sessions between transactions get 421 at once, sessions in a transaction get
 * edge.shutdownGraceMs to finish, then 421; a message being handed to the next hop always gets its answer.
 */
export class Edge implements EdgeHost {
  private readonly servers: Array<{ listener: ListenerName; server: EdgeServer; tls: ListenerTls }> = [];
  private readonly connections = new Map<string, EdgeConnection>();
  private readonly pregreet = new LRUCache<string, true>({
    max: PREGREET_CACHE_ENTRIES,
    ttl: 24 * 3600 * 1000,
  });
  private idle: Array<() => void> = [];
  private readonly proxyLists = new Map<string, NetworkList>();
  /** Sessions that are a load balancer's own connections (set by handleProxy, read once by accept). */
  private readonly loadBalancerOwn = new Set<string>();
  shuttingDown = false;

  constructor(
    private readonly config: ConfigHandle,
    readonly runner: Runner,
    private readonly phases: PhaseLists,
    private readonly tracker: ConnectionTracker,
    private readonly hop: () => NextHop,
    readonly logger: Logger,
    readonly bufferDir: string,
  ) {}

  cfg(): Config {
    return this.config.current.config;
  }

  nextHop(): NextHop {
    return this.hop();
  }

  pregreetPassed(ip: string): boolean {
    return this.pregreet.has(ip);
  }

  pregreetPass(ip: string, seconds: number): void {
    if (seconds > 0) this.pregreet.set(ip, true, { ttl: seconds * 1000 });
  }

  dataViolated(facts: DataFacts, cfg: Config): boolean {
    return this.phases.data.some((c) => c.violated?.(facts, cfg));
  }

  /** Open SMTP sessions. */
  get sessions(): number {
    return this.connections.size;
  }

  async start(): Promise<ListenAddress[]> {
    const out: ListenAddress[] = [];
    const { listeners } = this.cfg().edge;
    for (const name of LISTENERS) {
      const l = listeners[name];
      if (!l.enabled) continue;
      const tls = await this.loadListenerTls(name);
      const server = new EdgeServer(this.options(name, tls.material), name, this);
      server.on('error', (err: Error & { code?: string }) =>
        this.logger.warn({ listener: name, err: err.message, code: err.code }, 'SMTP connection error'),
      );
      await new Promise<void>((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(l.port, l.host, () => {
          server.server.off('error', reject);
          resolve();
        });
      });
      const port = (server.server.address() as AddressInfo).port;
      const entry = { listener: name, server, tls };
      this.servers.push(entry);
      this.watchTls(entry);
      out.push({ listener: name, host: l.host, port });
      this.logger.info(
        {
          listener: name,
          host: l.host,
          port,
          requireAuth: l.requireAuth,
          greetingDelayMs: l.greetingDelayMs,
          tls: tls.material ? (l.implicitTls ? 'implicit' : 'starttls') : 'none',
        },
        'SMTP listening',
      );
    }
    return out;
  }

  /** The listener's certificate (files, or self-signed on request); an implicit-TLS listener needs one. */
  private async loadListenerTls(name: ListenerName): Promise<ListenerTls> {
    const cfg = this.cfg();
    const tlsCfg = listenerTls(cfg, name);
    const where = cfg.edge.listeners[name].tls ? `edge.listeners.${name}.tls` : 'edge.tls';
    let material: TlsMaterial | undefined;
    try {
      material = await loadTls(tlsCfg, (p) => this.configPath(p), cfg.edge.hostname);
    } catch (err) {
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    if (!material && cfg.edge.listeners[name].implicitTls) {
      throw new Error(
        `edge.listeners.${name}: implicit TLS needs a certificate (${where}.certFile and keyFile, or selfSigned)`,
      );
    }
    if (material?.selfSigned) {
      this.logger.warn(
        { listener: name },
        `${where}.selfSigned: using a self-signed certificate generated at start; clients that verify certificates will refuse it`,
      );
    }
    return { material, key: JSON.stringify(tlsCfg), stopWatching: () => undefined };
  }

  /** Reloads a listener's certificate when its files change (cert-manager renews them). */
  private watchTls(entry: { listener: ListenerName; server: EdgeServer; tls: ListenerTls }): void {
    entry.tls.stopWatching();
    const files = tlsFiles(listenerTls(this.cfg(), entry.listener), (p) => this.configPath(p));
    entry.tls.stopWatching = watchFiles(files, () => void this.reloadTls(entry), this.logger);
  }

  private async reloadTls(entry: {
    listener: ListenerName;
    server: EdgeServer;
    tls: ListenerTls;
  }): Promise<void> {
    try {
      const tls = await this.loadListenerTls(entry.listener);
      if (!tls.material && entry.tls.material) throw new Error('the certificate was removed from the config');
      entry.tls.material = tls.material;
      entry.tls.key = tls.key;
      if (tls.material) {
        const { key, cert, sniOptions, minVersion } = tls.material;
        entry.server.updateSecureContext({ key, cert, sniOptions, minVersion });
      }
      this.logger.info({ listener: entry.listener }, 'TLS certificate reloaded');
    } catch (err) {
      this.logger.error(
        { listener: entry.listener, err: (err as Error).message },
        'TLS certificate not reloaded; keeping the previous one',
      );
    }
  }

  /** Whether the listener can do TLS (STARTTLS is offered, or it is implicit). */
  tlsOffered(listener: ListenerName): boolean {
    return Boolean(this.servers.find((s) => s.listener === listener)?.tls.material);
  }

  /** Applies a changed config to the listeners' smtp-server options (the rest is read per use). */
  reload(): void {
    for (const entry of this.servers) {
      Object.assign(entry.server.options, this.options(entry.listener, entry.tls.material));
      if (JSON.stringify(listenerTls(this.cfg(), entry.listener)) !== entry.tls.key) {
        void this.reloadTls(entry).then(() => this.watchTls(entry));
      }
    }
  }

  /** A path from the config, relative to the config file's directory. */
  private configPath(p: string): string {
    return resolve(dirname(this.config.current.file), p);
  }

  private options(listener: ListenerName, tls: TlsMaterial | undefined): SMTPServerOptions {
    const edge = this.cfg().edge;
    const allowed = edge.protocol.allowedCommands as string[];
    const noTls = !tls || edge.listeners[listener].implicitTls;
    return {
      name: edge.hostname,
      hideENHANCEDSTATUSCODES: false,
      // AUTH is offered everywhere; where it is required (submission), the policy says so at MAIL FROM with
      // its own reason code, instead of smtp-server's generic refusal.
      authOptional: true,
      allowInsecureAuth: true, // the edge decides (plainAuthAllowed), before smtp-server sees AUTH
      authMethods: this.cfg().auth.mechanisms,
      size: edge.maxMessageBytes,
      // Implicit TLS: the handshake comes first; STARTTLS only where a certificate is configured (smtp-server's
      // built-in demo certificate is never used).
      secure: edge.listeners[listener].implicitTls,
      ...(tls
        ? { key: tls.key, cert: tls.cert, sniOptions: tls.sniOptions, minVersion: tls.minVersion }
        : {}),
      hideSTARTTLS: noTls,
      disabledCommands: [
        ...DISABLED,
        ...['AUTH', 'STARTTLS'].filter((c) => !allowed.includes(c) || (c === 'STARTTLS' && noTls)),
      ],
      // The parser's limit is the flood limit; the command line limit is the edge's (500 5.5.2, not 421).
      maxCommandLength: edge.limits.unterminatedOctets,
      // A backstop only: the edge's own timers answer first (edge.timeouts).
      socketTimeout: Math.max(edge.timeouts.commandMs, edge.timeouts.dataMs) + 60_000,
      disableReverseLookup: true,
      logger: false,
      onConnect: (_session, cb) => cb(),
      onSecure: (_socket, session, cb) => this.conn(session.id, cb)?.onSecure(() => cb()),
      onAuth: (auth, session, cb) =>
        this.conn(session.id, cb)?.onAuth(auth, (err, user) => (err ? cb(err) : cb(null, { user }))),
      onMailFrom: (address, session, cb) => this.conn(session.id, cb)?.onMailFrom(address, cb),
      onRcptTo: (address, session, cb) => this.conn(session.id, cb)?.onRcptTo(address, cb),
      onData: (stream, session, cb) => {
        const c = this.conn(session.id, cb);
        if (c) c.onData(stream, cb);
        else stream.resume();
      },
      onClose: (session) => this.connections.get(session.id)?.closed(),
    };
  }

  private conn(id: string, cb: (err: Error) => void): EdgeConnection | undefined {
    const c = this.connections.get(id);
    if (!c) cb(new Error(`no session state for ${id}`));
    return c;
  }

  /**
   * A connection from a trusted load balancer starts with a PROXY header naming the real client, which every
   * check, decision, log line and the Received header then use. Other peers go on as they are (a PROXY header
   * from them is refused later, as a command).
   */
  handleProxy(
    server: EdgeServer,
    socket: Socket,
    callback: (err: Error | null, socketOptions?: ProxiedSocket) => void,
  ): void {
    const id = sessionId();
    const peer = plainIp(socket.remoteAddress ?? '');
    const settings = this.cfg().edge.listeners[server.listener].proxyProtocol;
    if (!this.trustedProxies(server.listener).match(peer)) {
      setImmediate(() => callback(null, { id }));
      return;
    }
    socket.on('error', () => undefined);
    readProxyHeader(socket, settings.headerTimeoutMs).then(
      (client) => {
        if ('local' in client) this.loadBalancerOwn.add(id);
        callback(
          null,
          'local' in client ? { id } : { id, remoteAddress: client.address, remotePort: client.port },
        );
      },
      (err: Error) => {
        const state = new Session(
          id,
          server.listener,
          peer,
          socket.remotePort ?? 0,
          this.cfg().instance,
          this.cfg().edge.hostname,
        );
        const reply = this.runner.refuse(state, 'connect', 'proxy-protocol', 'connect.proxy_invalid', {
          error: err.message,
        });
        if (!socket.destroyed) {
          socket.end(`${formatReply(reply)}\r\n`);
          setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
        }
        callback(err);
      },
    );
  }

  /** The listener's trusted load balancers, compiled once per config. */
  private trustedProxies(listener: ListenerName): NetworkList {
    const rules = this.cfg().edge.listeners[listener].proxyProtocol.trustedProxies;
    const key = `${listener} ${rules.join(',')}`;
    let list = this.proxyLists.get(key);
    if (!list) {
      list = new NetworkList(rules);
      this.proxyLists.set(key, list);
    }
    return list;
  }

  /** A new TCP connection: the connect phase decides whether it becomes an SMTP session. */
  accept(server: EdgeServer, socket: Socket, options: SMTPConnectionOptions): void {
    // Until smtp-server's own listeners are attached, a reset by the client must not crash the process.
    socket.on('error', () => undefined);
    const cfg = this.cfg();
    const ip = plainIp(options.remoteAddress ?? socket.remoteAddress ?? '').toLowerCase();
    const id = options.id ?? sessionId();
    if (!ip) {
      // The peer reset the connection before it was even looked at (its address is gone with it), as a load
      // balancer's TCP health check does: nothing to decide about.
      this.loadBalancerOwn.delete(id);
      socket.destroy();
      return;
    }
    const state = new Session(
      id,
      server.listener,
      ip,
      Number(options.remotePort ?? socket.remotePort ?? 0),
      cfg.instance,
      cfg.edge.hostname,
    );
    const { span, ctx } = startSpan('smtp.session', {
      'smtpguard.session': id,
      'smtpguard.listener': server.listener,
      'client.address': ip,
      'client.port': state.clientPort,
    });
    state.span = span;
    state.ctx = ctx;
    state.tls = Boolean(server.options.secure);
    state.loadBalancer = this.loadBalancerOwn.delete(id);
    this.runner.run('connect', this.runner.context('connect', cfg, state, {})).then(
      () => {
        if (socket.destroyed || this.shuttingDown) {
          this.release(state);
          if (!socket.destroyed) socket.destroy();
          return;
        }
        const conn = new EdgeConnection(server, socket, { ...options, id }, state, this);
        server.connections.add(conn);
        conn.on('error', (err: Error) => server.emit('error', err));
        this.connections.set(id, conn);
        conn.init();
      },
      (err: unknown) => {
        this.release(state);
        if (isReplyError(err)) {
          socket.end(`${formatReply(err.reply)}\r\n`);
          setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
          return;
        }
        this.logger.error({ session: id, err: (err as Error).stack }, 'connect phase failed');
        socket.destroy();
      },
    );
  }

  private release(state: Session): void {
    this.tracker.release(state);
    state.span?.end();
  }

  forget(conn: EdgeConnection): void {
    this.connections.delete(conn.state.id);
    this.release(conn.state);
    if (this.connections.size === 0) {
      for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  /** Stops accepting, lets transactions finish for shutdownGraceMs, then closes what remains with 421. */
  async stop(): Promise<void> {
    this.shuttingDown = true;
    for (const entry of this.servers) entry.tls.stopWatching();
    // Stops accepting at once; the callbacks fire once the last connection of each listener is gone.
    const closed = this.servers.map(
      ({ server }) => new Promise<void>((resolve) => server.server.close(() => resolve())),
    );
    for (const c of this.connections.values()) c.shutdown('between transactions');
    const grace = this.cfg().edge.shutdownGraceMs;
    if (!(await this.drained(grace))) {
      for (const c of this.connections.values()) c.shutdown('at the end of the shutdown grace period', true);
    }
    // A message being handed over finishes within the next hop's timeout; then every session is gone.
    const hop = this.cfg().edge.nextHop;
    await this.drained('timeoutMs' in hop ? hop.timeoutMs : 5_000);
    for (const c of this.connections.values()) c.destroy();
    await Promise.all(closed);
  }

  private drained(ms: number): Promise<boolean> {
    if (this.connections.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}
