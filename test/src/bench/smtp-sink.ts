// The reference of `pnpm bench:smtp`: a bare smtp-server that accepts every message and throws it away (no
// greeting pause (smtp-server's fixed 100 ms removed), no checks, no disk), in its own process so that its CPU and memory are measured alone.
// Usage: node test/dist/bench/smtp-sink.js <port>
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

// smtp-server waits a fixed 100 ms before its greeting (early-talker detection). The edge replaces that pause
// with its own setting (0 here); the reference greets at once too, or it would not be a floor.
(SMTPConnection.prototype as unknown as { init(): void }).init = function (this: {
  _setListeners(cb: () => void): void;
  connectionReady(): void;
}) {
  this._setListeners(() => this.connectionReady());
};

const port = Number(process.argv[2]);
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  logger: false,
  // No reverse DNS of the client (smtp-server's default asks the system resolver on every connection): a floor,
  // not a measure of the machine's resolver. The edge turns it off too.
  disableReverseLookup: true,
  onData(stream, _session, callback) {
    stream.on('data', () => undefined);
    stream.once('end', () => callback());
  },
});
server.listen(port, '127.0.0.1', () => process.stdout.write('sink ready\n'));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
