import { type Socket, connect as tcpConnect } from 'node:net';
import {
  type ConnectionOptions,
  type PeerCertificate,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';

/**
 * A raw SMTP client over TCP for exact-reply tests: it sends whatever bytes a test asks for (pipelined,
 * malformed, trickled) and reads whole replies ("250-..." lines up to "250 ..."). Every wait is bounded.
 */
export class RawSmtp {
  private buffer = '';
  private waiters: Array<() => void> = [];
  /** Resolves when the server closed the connection. */
  readonly closed: Promise<void>;
  private isClosed = false;

  private constructor(private socket: Socket | TLSSocket) {
    this.closed = new Promise((resolve) => {
      const done = () => {
        this.isClosed = true;
        this.wake();
        resolve();
      };
      socket.once('close', done);
    });
    this.listen(socket);
    socket.on('error', () => undefined);
  }

  private listen(socket: Socket | TLSSocket): void {
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString('latin1');
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Connects (from `localAddress` on loopback if given); does not read the greeting. */
  static connect(port: number, localAddress?: string): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ port, host: '127.0.0.1', localAddress });
      socket.once('connect', () => resolve(new RawSmtp(socket)));
      socket.once('error', reject);
    });
  }

  /** Connects and reads the greeting; returns it as well. */
  static async open(port: number, localAddress?: string): Promise<{ c: RawSmtp; greeting: string }> {
    const c = await RawSmtp.connect(port, localAddress);
    return { c, greeting: await c.read() };
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** The next whole reply (all its lines, CRLF-joined, without the final CRLF). */
  async read(timeoutMs = 5000): Promise<string> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buffer);
      if (m) {
        this.buffer = this.buffer.slice(m[0].length);
        return m[0].slice(0, -2);
      }
      if (this.isClosed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffer)}`);
      const left = until - Date.now();
      if (left <= 0)
        throw new Error(`no reply within ${timeoutMs} ms; unread: ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Whatever arrived and was not read as a reply. */
  get unread(): string {
    return this.buffer;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends one command line and reads its reply. */
  async cmd(line: string, timeoutMs?: number): Promise<string> {
    this.write(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  /**
   * Upgrades to TLS after a 220 to STARTTLS. Without `ca` the certificate is not verified; with it, it must be
   * valid for `servername`. Resolves with the certificate the server presented.
   */
  async startTls(opts: ConnectionOptions = {}): Promise<PeerCertificate> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    const secure = tlsConnect({
      socket: raw,
      rejectUnauthorized: Boolean(opts.ca),
      servername: 'localhost',
      ...opts,
    });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    secure.on('error', () => undefined);
    this.socket = secure;
    this.listen(secure);
    return secure.getPeerCertificate();
  }

  /** Connects with TLS from the first byte (implicit TLS, RFC 8314) and reads the greeting. */
  static openTls(
    port: number,
    opts: ConnectionOptions & { localAddress?: string } = {},
  ): Promise<{ c: RawSmtp; greeting: string; cert: PeerCertificate }> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: Boolean(opts.ca), ...opts });
      socket.once('secureConnect', () => {
        const c = new RawSmtp(socket);
        c.read().then((greeting) => resolve({ c, greeting, cert: socket.getPeerCertificate() }), reject);
      });
      socket.once('error', reject);
    });
  }

  /** Sends QUIT (if still open) and closes. */
  async quit(): Promise<void> {
    if (this.isOpen) {
      this.write('QUIT\r\n');
      await Promise.race([this.closed, new Promise((r) => setTimeout(r, 1000))]);
    }
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
