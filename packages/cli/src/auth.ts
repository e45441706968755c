import { auth } from '@smtpguard/contracts';
import { createClient, operatorMetadata, unary } from '@smtpguard/grpc-kit';
import { takeFlag } from './flags.js';

export const authUsage = `  auth lockouts [QUERY] [--locked] [--limit N]
                                           accounts and client IPs with failed logins (--locked: locked now)
  auth lockouts clear VALUE [account|client]
                                           forget the failed logins of an account or client IP (both kinds by default)
  auth quota show ACCOUNT                  the account's sending counters this hour and its limits
  auth quota reset ACCOUNT                 set the account's sending counters back to zero
    (--address HOST:PORT of the auth service; default: auth.listen of --config, else 127.0.0.1:7101;
     --json: the service's answer as one JSON object)`;

const iso = (d?: Date) => (d ? d.toISOString().replace('.000Z', 'Z') : '-');
const kinds: Record<string, auth.LockoutKind> = {
  account: auth.LockoutKind.LOCKOUT_KIND_ACCOUNT,
  client: auth.LockoutKind.LOCKOUT_KIND_CLIENT,
};

/** `smtpguard auth ...`: the admin RPCs of the auth service. Returns the exit code. */
export async function authCommand(
  args: string[],
  address: string,
  out: (line: string) => void,
  /** Who makes the change; the service records it with the decision. */
  operator = 'unknown',
): Promise<number> {
  const client = createClient(auth.AuthServiceClient, address);
  const call = <Req, Res>(method: Parameters<typeof unary<Req, Res>>[2], req: Req) =>
    unary('auth', client, method, req, 10_000, operatorMetadata(operator));
  try {
    const [sub, ...rest] = args;
    const json = takeFlag(rest, '--json');
    /** The answer as JSON with --json, else as text. */
    const show = <T>(type: { toJSON(m: T): unknown }, r: T, text: () => void) =>
      json ? out(JSON.stringify(type.toJSON(r))) : text();
    const limitAt = rest.indexOf('--limit');
    const limit = limitAt >= 0 ? Number(rest.splice(limitAt, 2)[1]) : 100;
    const lockedOnly = takeFlag(rest, '--locked');
    if (sub === 'lockouts' && rest[0] === 'clear') {
      const [, value, kind] = rest;
      if (!value || (kind && !kinds[kind])) return usage(out);
      const r = await call(client.clearLockout, {
        value,
        kind: kind ? (kinds[kind] as auth.LockoutKind) : 0,
      });
      show(auth.ClearLockoutResponse, r, () =>
        out(
          r.cleared ? `cleared ${r.cleared} counter(s) of ${value}` : `no failed logins counted for ${value}`,
        ),
      );
      return r.cleared ? 0 : 1;
    }
    if (sub === 'lockouts') {
      const r = await call(client.listLockouts, { query: rest[0] ?? '', limit, lockedOnly });
      show(auth.ListLockoutsResponse, r, () => {
        out(['kind', 'failures', 'window started', 'locked until', 'value'].join('\t'));
        for (const e of r.entries) {
          const kind = e.kind === auth.LockoutKind.LOCKOUT_KIND_ACCOUNT ? 'account' : 'client';
          out([kind, String(e.failures), iso(e.windowStarted), iso(e.lockedUntil), e.value].join('\t'));
        }
      });
      return 0;
    }
    if (sub === 'quota' && rest[1]) {
      const account = rest[1];
      if (rest[0] === 'show') {
        const r = await call(client.getSendingCounters, { account });
        const lim = (n: number) => (n ? String(n) : 'no limit');
        show(auth.GetSendingCountersResponse, r, () => {
          out(`account: ${r.account}`);
          out(`messages this hour: ${r.messages} (limit ${lim(r.messageLimit)})`);
          out(`recipients this hour: ${r.recipients} (limit ${lim(r.recipientLimit)})`);
          out(`window started: ${iso(r.windowStarted)}`);
          out(`limits from: ${r.limitSource}`);
        });
        return 0;
      }
      if (rest[0] === 'reset') {
        const r = await call(client.resetSendingCounters, { account });
        show(auth.ResetSendingCountersResponse, r, () =>
          out(r.reset ? `reset the sending counters of ${account}` : `nothing counted for ${account}`),
        );
        return 0;
      }
    }
    return usage(out);
  } finally {
    client.close();
  }
}

function usage(out: (line: string) => void): number {
  out(`usage:\n${authUsage}`);
  return 2;
}
