import type { Socket } from 'node:net';
import {
  SMTPServer,
  type SMTPServerDataResult,
  type SMTPServerOptions,
  type SMTPServerSession,
} from 'smtp-server';

export interface CapturedMessage {
  from: string;
  to: string[];
  raw: Buffer;
  /** The MAIL FROM parameters as smtp-server parsed them (upper-case keys). */
  mailArgs: Record<string, string | true>;
}

export interface CaptureOptions extends SMTPServerOptions {
  /** Listen on this port (to restart a next hop on the same port); 0 or unset: any free port. */
  port?: number;
  /** The next hop's own refusal of a recipient (smtp-server adds the enhanced code: 550 -> 5.1.1). */
  refuseRecipient?: (address: string) => { code: number; message: string } | undefined;
  /** What the next hop answers to a complete message: an Error refuses it (see smtpError), an LMTP hop may
   * answer per recipient. A refused message is not kept. */
  answer?: (
    msg: CapturedMessage,
    session: SMTPServerSession,
  ) => Error | string | SMTPServerDataResult[] | undefined;
}

export interface CaptureServer {
  server: SMTPServer;
  port: number;
  /** Complete messages accepted. */
  messages: CapturedMessage[];
  /** Messages whose connection went away before the final dot (never delivered). */
  readonly cutOff: number;
  /** SMTP sessions started. */
  readonly connections: number;
  /** Open TCP sockets by the client's port (to destroy one from the server's side). */
  sockets: Map<number, Socket>;
  /** Destroys every open connection from the server's side. */
  dropConnections(): void;
  close(): Promise<void>;
}

/** An Error with an SMTP reply code, as smtp-server's callbacks take it. */
export function smtpError(code: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode: code });
}

/**
 * A real next hop for tests: an SMTP (or, with `lmtp: true`, LMTP) server on 127.0.0.1 (npm smtp-server) that
 * keeps what it receives and can refuse recipients or messages the way a mailbox server does.
 */
export async function startCaptureServer(options: CaptureOptions = {}): Promise<CaptureServer> {
  const { port, refuseRecipient, answer, ...serverOptions } = options;
  const state = { cutOff: 0, connections: 0 };
  const sockets = new Map<number, Socket>();
  const messages: CapturedMessage[] = [];
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    hideENHANCEDSTATUSCODES: false,
    disableReverseLookup: true,
    closeTimeout: 200,
    onConnect(_session, callback) {
      state.connections += 1;
      callback();
    },
    onRcptTo(address, _session, callback) {
      const refusal = refuseRecipient?.(address.address);
      callback(refusal ? smtpError(refusal.code, refusal.message) : undefined);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', () => {
        state.cutOff += 1;
      });
      stream.on('end', () => {
        const mailFrom = session.envelope.mailFrom;
        const msg: CapturedMessage = {
          from: mailFrom ? mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          mailArgs: (mailFrom ? mailFrom.args : false) || {},
        };
        const result = answer?.(msg, session);
        if (result instanceof Error) return callback(result);
        messages.push(msg);
        callback(null, result);
      });
    },
    ...serverOptions,
  });
  server.on('error', () => {
    // a client dropping its connection is expected here
  });
  server.server.on('connection', (socket: Socket) => {
    const p = socket.remotePort ?? 0;
    sockets.set(p, socket);
    socket.once('close', () => sockets.delete(p));
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.server.address();
  const dropConnections = () => {
    for (const socket of sockets.values()) socket.destroy();
  };
  return {
    server,
    port: typeof address === 'object' && address ? address.port : 0,
    messages,
    get cutOff() {
      return state.cutOff;
    },
    get connections() {
      return state.connections;
    },
    sockets,
    dropConnections,
    close: () =>
      new Promise<void>((resolve) => {
        // Pooled connections from the edge are idle, not finished: end them now.
        dropConnections();
        server.close(() => resolve());
      }),
  };
}
