import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@smtpguard/logging';
import type { LoginRecorder } from '../logins.js';

// Dovecot posts small JSON objects (its auth_policy_request_attributes); anything larger is not Dovecot.
const MAX_BODY = 64 * 1024;

/** What Dovecot 2.3 posts (auth_policy_request_attributes defaults; report adds success and policy_reject). */
interface PolicyRequest {
  login?: string;
  remote?: string;
  protocol?: string;
  success?: boolean;
  policy_reject?: boolean;
}

/** Dovecot's answer: status 0 allows, a negative status refuses, a positive one delays by that many seconds. */
export interface PolicyAnswer {
  status: number;
  msg: string;
}

/**
 * Dovecot's auth policy server protocol (auth_policy_server_url): Dovecot POSTs JSON to `<url>?command=allow`
 * before it authenticates a login (we answer with the lockout state of the login and the client IP) and to
 * `<url>?command=report` after it (a success becomes a POP-before-SMTP entry, a failure counts toward the
 * lockout; the answer is ignored by Dovecot).
 */
export async function answerPolicy(
  command: string,
  req: PolicyRequest,
  logins: LoginRecorder,
): Promise<PolicyAnswer> {
  const login = typeof req.login === 'string' ? req.login : '';
  const ip = typeof req.remote === 'string' ? req.remote : '';
  if (command === 'allow') {
    const lock = await logins.locked(login, ip);
    if (!lock) return { status: 0, msg: 'ok' };
    const what = lock.kind === 'account' ? 'account' : 'client address';
    return { status: -1, msg: `Access denied: too many failed logins for this ${what}, try again later` };
  }
  if (command === 'report') {
    // A login Dovecot refused because we said so is not another failure.
    if (req.policy_reject === true || !login || !ip) return { status: 0, msg: 'ok' };
    await logins.report({
      login,
      clientIp: ip,
      protocol: String(req.protocol ?? ''),
      success: req.success === true,
    });
    return { status: 0, msg: 'ok' };
  }
  throw new Error(`unknown command "${command}"`);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The HTTP endpoint Dovecot calls; listens on `listen` ("host:port"). */
export async function startDovecotPolicy(
  listen: string,
  authorization: () => string,
  logins: LoginRecorder,
  logger: Logger,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const url = new URL(req.url ?? '/', 'http://policy');
    const command = url.searchParams.get('command') ?? '';
    const expected = authorization();
    if (expected && req.headers.authorization !== expected)
      return send(401, { status: 0, msg: 'unauthorized' });
    if (req.method !== 'POST') return send(405, { status: 0, msg: 'POST only' });
    readBody(req)
      .then(async (text) => {
        const body = JSON.parse(text || '{}') as PolicyRequest;
        const answer = await answerPolicy(command, body, logins);
        logger.debug(
          { command, login: body.login, remote: body.remote, success: body.success, answer },
          'dovecot policy',
        );
        send(200, answer);
      })
      .catch((err: Error) => {
        // Dovecot treats a failed request as "allow" unless auth_policy_reject_on_fail is set.
        logger.warn({ command, err: err.message }, 'dovecot policy request failed');
        send(400, { status: 0, msg: err.message });
      });
  });
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw new Error(`auth.popBeforeSmtp.dovecotPolicyListen: expected "host:port", got "${listen}"`);
  const host = (m[1] as string).replace(/^\[|\]$/g, '');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ listen: `${host}:${port}` }, 'dovecot auth policy endpoint listening');
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
