import SMTPConnection from 'nodemailer/lib/smtp-connection';

export interface SendOptions {
  port: number;
  /** Source address on loopback (127.0.0.2 is the RFC 5782 "listed" test address). */
  localAddress?: string;
  auth?: { user: string; pass: string };
  from: string;
  to: string[];
  message: string | Buffer;
}

export interface SendResult {
  /** Basic reply code of the last reply (250 when accepted). */
  code: number;
  /** Full text of that reply, e.g. "550 5.7.1 Relaying denied: ...". */
  response: string;
  accepted: string[];
  rejected: string[];
}

/** One SMTP transaction with a real SMTP client (nodemailer's SMTPConnection) over TCP. */
export async function smtpSend(opts: SendOptions): Promise<SendResult> {
  const conn = new SMTPConnection({
    host: '127.0.0.1',
    port: opts.port,
    localAddress: opts.localAddress,
    name: 'client.example.net',
    ignoreTLS: true,
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 15_000,
  });
  const fail = (
    err: Error & { responseCode?: number; response?: string; rejected?: string[] },
  ): SendResult => ({
    code: err.responseCode ?? 0,
    response: err.response ?? err.message,
    accepted: [],
    rejected: err.rejected ?? opts.to,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('error', reject);
      conn.connect(() => resolve());
    });
    if (opts.auth) {
      await new Promise<void>((resolve, reject) =>
        conn.login({ user: opts.auth?.user ?? '', pass: opts.auth?.pass ?? '' }, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    }
    return await new Promise<SendResult>((resolve) =>
      conn.send({ from: opts.from, to: opts.to }, opts.message, (err, info) => {
        if (err) return resolve(fail(err as Error));
        resolve({
          code: Number(String(info.response).slice(0, 3)),
          response: String(info.response),
          accepted: info.accepted.map(String),
          rejected: info.rejected.map(String),
        });
      }),
    );
  } catch (err) {
    return fail(err as Error);
  } finally {
    conn.quit();
    conn.close();
  }
}
