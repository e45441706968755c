import net from 'node:net';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import { DeliveryError, type HopReply } from './next-hop.js';

/**
 * A small stepwise SMTP/LMTP client: one command, one reply, so the edge can run the next hop's transaction
 * alongside its client's (before-queue proxy). No pipelining: every step waits for its reply, which keeps
 * the reply of each recipient attributable and costs nothing that matters on a LAN hop.
 */

export interface SmtpClientOptions {
  host: string;
  port: number;
  /** Speak LMTP (LHLO, one reply per accepted recipient after the final dot). */
  lmtp: boolean;
  /** Name sent with EHLO/LHLO. */
  heloName: string;
  /** Time the next hop gets for each step: connect, greeting, TLS handshake, each reply. */
  timeoutMs: number;
  /** Upgrade with STARTTLS when the next hop offers it (certificate not verified: internal hops). */
  opportunisticTls: boolean;
}

/** What the next hop advertised in its EHLO/LHLO reply (the last one, after STARTTLS). */
export interface SmtpExtensions {
  /** SIZE was advertised. */
  size: boolean;
  /** The SIZE limit in bytes; 0 when none was given. */
  maxSize: number;
  eightBitMime: boolean;
  smtpUtf8: boolean;
  pipelining: boolean;
  startTls: boolean;
  enhancedStatusCodes: boolean;
}

export interface MailParams {
  /** SIZE= (sent when the hop advertised SIZE). */
  size?: number | undefined;
  /** BODY=8BITMIME (sent when the hop advertised 8BITMIME). */
  body8bit?: boolean | undefined;
  /**
   * SMTPUTF8 (sent only when the hop advertised it). The caller must check `extensions.smtpUtf8` first: a
   * hop without it cannot take the message, and SmtpNextHop refuses the transaction (553 5.6.7) itself.
   */
  smtputf8?: boolean | undefined;
}

const NO_EXTENSIONS: SmtpExtensions = {
  size: false,
  maxSize: 0,
  eightBitMime: false,
  smtpUtf8: false,
  pipelining: false,
  startTls: false,
  enhancedStatusCodes: false,
};

/** Longest reply line accepted (RFC 5321 4.5.3.1.5 allows 512 octets; be generous, but bounded). */
const MAX_LINE = 8192;
/** Most lines of one reply (a long EHLO list has ~20). */
const MAX_REPLY_LINES = 100;

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const DOT_BUF = Buffer.from('.');
// Control characters (C0, DEL, C1) never reach a reply text: the text is passed on to the edge's client.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/g;
const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)/;

/**
 * Dot-stuffing of the message body (RFC 5321 4.5.2): a line starting with "." gets one more. A line start
 * is any byte after LF, not only after CRLF: a receiver that takes a bare LF as a line end must never see
 * "\n.\r\n" as the end of data (SMTP smuggling), and receivers that require CRLF unstuff after LF as well.
 * Keeps its state across chunk boundaries.
 */
export class DotStuffer {
  private atLineStart = true;
  private lastByte = -1;
  private total = 0;
  /** True when the message so far ends with CRLF (the final dot may follow directly). */
  private endsWithCrlf = false;

  /** The stuffed form of the next chunk of the message. */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const parts: Buffer[] = [];
    let start = 0;
    if (this.atLineStart && chunk[0] === DOT) parts.push(DOT_BUF);
    for (let nl = chunk.indexOf(LF); nl !== -1; nl = chunk.indexOf(LF, nl + 1)) {
      if (chunk[nl + 1] === DOT) {
        parts.push(chunk.subarray(start, nl + 1), DOT_BUF);
        start = nl + 1;
      }
    }
    const last = chunk[chunk.length - 1] as number;
    this.atLineStart = last === LF;
    this.endsWithCrlf =
      last === LF && (chunk.length > 1 ? chunk[chunk.length - 2] === CR : this.lastByte === CR);
    this.lastByte = last;
    this.total += chunk.length;
    if (parts.length === 0) return chunk;
    parts.push(chunk.subarray(start));
    return Buffer.concat(parts);
  }

  /**
   * What goes before the final ".\r\n": CRLF when the message does not end with one. An empty message
   * needs nothing ("DATA", 354, ".\r\n" is an empty message).
   */
  terminator(): string {
    return this.total === 0 || this.endsWithCrlf ? '.\r\n' : '\r\n.\r\n';
  }
}

/** Parses the reply lines (without CRLF) of one reply. */
export function parseReply(lines: string[]): HopReply {
  let code = 0;
  let enhanced = '';
  const texts: string[] = [];
  for (const [i, line] of lines.entries()) {
    if (i === 0) code = Number(line.slice(0, 3));
    let text = line.slice(4).replace(CONTROL_CHARS, ' ').trim();
    // RFC 2034 puts the enhanced code on every line of a multi-line reply; keep the first, strip all. Only a
    // code of the reply's class counts (a "250 5.0.0" is not a refusal).
    const m = ENHANCED.exec(text);
    if (m?.[1] && m[1][0] === String(code)[0]) {
      if (!enhanced) enhanced = m[1];
      text = text.slice(m[0].length).trim();
    }
    if (text) texts.push(text);
  }
  return { code, enhanced, text: texts.join(' ') };
}

/** A reply with its lines as received (EHLO needs them). */
interface RawReply {
  reply: HopReply;
  lines: string[];
}

interface ReplyWaiter {
  resolve(reply: RawReply): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

type State = 'command' | 'data' | 'closed';

/**
 * One connection to the next hop. Every failure (timeout, socket error, closed connection, malformed reply)
 * is a DeliveryError 'queue.nexthop_failed' and makes the client unusable: the protocol state is unknown
 * then, and the connection is destroyed.
 */
export class SmtpClient {
  private socket: net.Socket;
  private exts: SmtpExtensions = NO_EXTENSIONS;
  private buffer: Buffer = Buffer.alloc(0);
  private partial: string[] = [];
  private replies: RawReply[] = [];
  private waiter: ReplyWaiter | undefined;
  /** Replies the client asked for and has not received yet; a reply beyond them is unsolicited. */
  private expected = 0;
  private failure: DeliveryError | undefined;
  private state: State = 'command';
  private broken = false;
  private secure = false;
  private accepted = 0;
  private dataStream: Writable | undefined;
  private stuffer: DotStuffer | undefined;
  private readonly failureListeners = new Set<() => void>();
  private readonly closeListeners = new Set<() => void>();

  private constructor(
    private readonly opts: SmtpClientOptions,
    socket: net.Socket,
  ) {
    this.socket = socket;
    this.attach(socket);
  }

  /**
   * Connects, reads the greeting, sends EHLO (LHLO) and, when offered and wanted, upgrades with STARTTLS
   * and sends EHLO (LHLO) again. Rejects with DeliveryError when any step fails or times out.
   */
  static async connect(opts: SmtpClientOptions): Promise<SmtpClient> {
    const socket = net.connect({ host: opts.host, port: opts.port });
    const client = new SmtpClient(opts, socket);
    try {
      await client.step('connect', (done) => socket.once('connect', done));
      socket.setNoDelay(true);
      // Keepalive probes notice a hop that vanished while the connection sat idle in the pool.
      socket.setKeepAlive(true, 30_000);
      client.expected = 1;
      const greeting = (await client.readReply()).reply;
      if (greeting.code !== 220) throw client.protocolError('greeting', greeting);
      await client.hello();
      if (client.exts.startTls && opts.opportunisticTls) {
        const reply = await client.command('STARTTLS');
        // A refused STARTTLS leaves the cleartext session as it was (opportunistic: carry on without).
        if (reply.code === 220) {
          await client.upgrade();
          await client.hello();
        }
      }
      return client;
    } catch (err) {
      const failure = client.failure ?? toDeliveryError(err);
      client.close();
      throw failure;
    }
  }

  /** What the next hop advertised. */
  get extensions(): SmtpExtensions {
    return this.exts;
  }

  /** The session runs over TLS (STARTTLS succeeded). */
  get tls(): boolean {
    return this.secure;
  }

  /**
   * False after any failure, a 421 or an unsolicited reply, once the connection is closed, and while a
   * message is being sent (the connection cannot take a new transaction before endData()).
   */
  get usable(): boolean {
    return !this.broken && !this.failure && this.state === 'command';
  }

  /** Recipients the next hop accepted (2xx to RCPT) in the current transaction. */
  get acceptedRecipients(): number {
    return this.accepted;
  }

  /**
   * Sends one command line and reads its reply. MAIL and RSET start the recipient count over; a 2xx reply
   * to RCPT counts an accepted recipient (LMTP answers once per accepted recipient after the final dot).
   */
  async command(line: string): Promise<HopReply> {
    return (await this.send(line)).reply;
  }

  private async send(line: string): Promise<RawReply> {
    if (this.failure) throw this.failure;
    if (this.state !== 'command') {
      throw new DeliveryError('the next hop connection is sending a message', 'queue.nexthop_failed');
    }
    // A line break would let an address smuggle a second command to the next hop.
    if (/[\r\n]/.test(line)) {
      throw new DeliveryError('refusing a command with a line break', 'queue.nexthop_failed');
    }
    const verb = line.slice(0, 4).toUpperCase();
    if (verb === 'MAIL' || verb === 'RSET') this.accepted = 0;
    this.expected++;
    this.socket.write(`${line}\r\n`);
    const raw = await this.readReply();
    if (verb === 'RCPT' && raw.reply.code >= 200 && raw.reply.code < 300) this.accepted++;
    return raw;
  }

  /** MAIL FROM with the parameters the next hop advertised (see MailParams). */
  mailFrom(from: string, params: MailParams = {}): Promise<HopReply> {
    let line = `MAIL FROM:<${from}>`;
    if (params.size !== undefined && this.exts.size) line += ` SIZE=${params.size}`;
    if (params.body8bit && this.exts.eightBitMime) line += ' BODY=8BITMIME';
    if (params.smtputf8 && this.exts.smtpUtf8) line += ' SMTPUTF8';
    return this.command(line);
  }

  /**
   * After a 354 to DATA: the Writable that takes the message bytes as received (CRLF line ends, not
   * stuffed) and writes them dot-stuffed to the next hop, respecting the socket's backpressure. It never
   * emits 'error' for a next-hop failure (an unhandled one would crash the process): after a failure the
   * bytes are dropped and endData() rejects.
   */
  beginData(): Writable {
    if (this.state !== 'command' || this.failure) {
      throw new DeliveryError('the next hop connection cannot take a message now', 'queue.nexthop_failed');
    }
    this.state = 'data';
    const stuffer = new DotStuffer();
    this.stuffer = stuffer;
    this.dataStream = new Writable({
      write: (chunk: Buffer, _encoding, callback) => this.writeData(stuffer.push(chunk), callback),
    });
    return this.dataStream;
  }

  /**
   * Ends the message (waits until the stream from beginData() has finished; it must have been ended), sends
   * the final dot and reads the reply: one for SMTP, one per accepted recipient for LMTP.
   */
  async endData(): Promise<HopReply[]> {
    const stream = this.dataStream;
    const stuffer = this.stuffer;
    if (this.state !== 'data' || !stream || !stuffer) {
      throw new DeliveryError('endData() without beginData()', 'queue.nexthop_failed');
    }
    if (!stream.writableFinished) {
      await this.step('message stream end', (done) => {
        stream.once('finish', done);
        stream.once('close', done);
      });
    }
    if (this.failure) throw this.failure;
    if (!stream.writableFinished) {
      this.fail(new DeliveryError('the message stream was destroyed', 'queue.nexthop_failed'));
      throw this.failure;
    }
    const count = this.opts.lmtp ? this.accepted : 1;
    this.expected += count;
    this.socket.write(stuffer.terminator());
    const replies: HopReply[] = [];
    for (let i = 0; i < count; i++) replies.push((await this.readReply()).reply);
    this.state = 'command';
    this.dataStream = undefined;
    this.stuffer = undefined;
    this.accepted = 0;
    return replies;
  }

  /** Destroys the connection (the next hop drops a partial message). */
  close(): void {
    if (this.state === 'closed') return;
    this.fail(new DeliveryError('the next hop connection was closed', 'queue.nexthop_failed'));
  }

  /** Best effort QUIT (when the session is in a state to take it; its reply is awaited 1 s at most), then close. */
  async quit(): Promise<void> {
    if (this.usable) {
      const timer = setTimeout(() => this.close(), Math.min(this.opts.timeoutMs, 1000));
      try {
        await this.command('QUIT');
      } catch {
        // best effort
      } finally {
        clearTimeout(timer);
      }
    }
    this.close();
  }

  /** Called once when the connection is gone (closed by either side or after a failure). */
  onClose(listener: () => void): void {
    if (this.state === 'closed') queueMicrotask(listener);
    else this.closeListeners.add(listener);
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(toDeliveryError(err)));
    socket.on('close', () =>
      this.fail(new DeliveryError('the next hop closed the connection', 'queue.nexthop_failed')),
    );
  }

  private async hello(): Promise<void> {
    const verb = this.opts.lmtp ? 'LHLO' : 'EHLO';
    const { reply, lines } = await this.send(`${verb} ${this.opts.heloName}`);
    if (reply.code !== 250) throw this.protocolError(verb, reply);
    this.exts = parseExtensions(lines);
  }

  private async upgrade(): Promise<void> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    const servername = net.isIP(this.opts.host) ? undefined : this.opts.host;
    // The next hop is usually an internal server with a private certificate: encrypt, do not verify.
    const secure = tls.connect({
      socket: raw,
      rejectUnauthorized: false,
      ...(servername ? { servername } : {}),
    });
    this.socket = secure;
    this.buffer = Buffer.alloc(0);
    this.attach(secure);
    await this.step('TLS handshake', (done) => secure.once('secureConnect', done));
    this.secure = true;
  }

  /** Waits for an event with the step timeout; fails the client on timeout. */
  private step(what: string, register: (done: () => void) => void): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      const onFailure = () => {
        clearTimeout(timer);
        reject(this.failure);
      };
      const timer = setTimeout(() => {
        this.failureListeners.delete(onFailure);
        this.fail(
          new DeliveryError(
            `next hop: ${what} timed out after ${this.opts.timeoutMs} ms`,
            'queue.nexthop_failed',
          ),
        );
        reject(this.failure);
      }, this.opts.timeoutMs);
      this.failureListeners.add(onFailure);
      register(() => {
        clearTimeout(timer);
        this.failureListeners.delete(onFailure);
        resolve();
      });
    });
  }

  private writeData(bytes: Buffer, callback: (err?: Error | null) => void): void {
    if (this.failure || this.socket.write(bytes)) {
      callback();
      return;
    }
    const done = () => {
      this.socket.off('drain', done);
      this.failureListeners.delete(done);
      callback();
    };
    this.socket.once('drain', done);
    this.failureListeners.add(done);
  }

  private readReply(): Promise<RawReply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<RawReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(
          new DeliveryError(
            `next hop did not answer within ${this.opts.timeoutMs} ms`,
            'queue.nexthop_failed',
          ),
        );
      }, this.opts.timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    let start = 0;
    for (let nl = this.buffer.indexOf(LF); nl !== -1; nl = this.buffer.indexOf(LF, start)) {
      const end = nl > start && this.buffer[nl - 1] === CR ? nl - 1 : nl;
      const line = this.buffer.toString('utf8', start, end);
      start = nl + 1;
      this.onLine(line);
      if (this.failure) return;
    }
    this.buffer = this.buffer.subarray(start);
    if (this.buffer.length > MAX_LINE) {
      this.fail(new DeliveryError('next hop sent an overlong reply line', 'queue.nexthop_failed'));
    }
  }

  private onLine(line: string): void {
    const m = /^(\d{3})([ -]|$)/.exec(line);
    const code = m?.[1];
    if (!code || (this.partial.length && !this.partial[0]?.startsWith(code)) || line.length > MAX_LINE) {
      this.fail(
        new DeliveryError(`next hop sent a malformed reply: ${sanitize(line)}`, 'queue.nexthop_failed'),
      );
      return;
    }
    this.partial.push(line);
    if (m[2] === '-') {
      if (this.partial.length > MAX_REPLY_LINES) {
        this.fail(new DeliveryError('next hop sent an overlong reply', 'queue.nexthop_failed'));
      }
      return;
    }
    const lines = this.partial;
    this.partial = [];
    const reply = parseReply(lines);
    // 421: the next hop is closing the connection (RFC 5321 3.8); an unsolicited reply leaves the protocol
    // state unknown (e.g. a timeout notice while idle in the pool). Neither connection is used again.
    if (reply.code === 421) this.broken = true;
    if (this.expected > 0) this.expected--;
    else this.broken = true;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      clearTimeout(waiter.timer);
      waiter.resolve({ reply, lines });
    } else {
      this.replies.push({ reply, lines });
    }
  }

  private fail(err: DeliveryError): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.failure = err;
    this.socket.destroy();
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    for (const listener of [...this.failureListeners]) listener();
    this.failureListeners.clear();
    for (const listener of [...this.closeListeners]) listener();
    this.closeListeners.clear();
  }

  private protocolError(step: string, reply: HopReply): DeliveryError {
    const err = new DeliveryError(
      `next hop refused ${step}: ${reply.code} ${[reply.enhanced, reply.text].filter(Boolean).join(' ')}`,
      'queue.nexthop_failed',
    );
    this.fail(err);
    return err;
  }
}

function parseExtensions(lines: string[]): SmtpExtensions {
  const exts = { ...NO_EXTENSIONS };
  // The first line is the greeting part of the EHLO reply ("250-mx.example.org Hello").
  for (const line of lines.slice(1)) {
    const [keyword = '', param] = line.slice(4).trim().toUpperCase().split(/\s+/);
    switch (keyword) {
      case 'SIZE':
        exts.size = true;
        exts.maxSize = /^\d+$/.test(param ?? '') ? Number(param) : 0;
        break;
      case '8BITMIME':
        exts.eightBitMime = true;
        break;
      case 'SMTPUTF8':
        exts.smtpUtf8 = true;
        break;
      case 'PIPELINING':
        exts.pipelining = true;
        break;
      case 'STARTTLS':
        exts.startTls = true;
        break;
      case 'ENHANCEDSTATUSCODES':
        exts.enhancedStatusCodes = true;
        break;
    }
  }
  return exts;
}

function sanitize(s: string): string {
  return s.replace(CONTROL_CHARS, ' ').slice(0, 200);
}

function toDeliveryError(err: unknown): DeliveryError {
  if (err instanceof DeliveryError) return err;
  return new DeliveryError(
    `next hop: ${sanitize((err as Error)?.message ?? String(err))}`,
    'queue.nexthop_failed',
  );
}
