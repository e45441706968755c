import { greylist } from '@smtpguard/contracts';
import { createClient, operatorMetadata, unary } from '@smtpguard/grpc-kit';
import { takeFlag } from './flags.js';

export const greylistUsage = `  greylist list [QUERY] [--limit N]        triplets whose key contains QUERY
  greylist delete KEY                      forget one triplet
  greylist whitelist                       the administrator's whitelist
  greylist whitelist add client|recipient VALUE [COMMENT]
                                           client: IP, CIDR, range, host name, .domain; recipient: address, local part, @domain
  greylist whitelist remove client|recipient VALUE
  greylist stats                           counts of triplets, auto-whitelisted clients, whitelist entries
    (--address HOST:PORT of the greylist service; default: greylist.listen of --config, else 127.0.0.1:7103;
     --json: the service's answer as one JSON object)`;

const kinds: Record<string, greylist.WhitelistKind> = {
  client: greylist.WhitelistKind.WHITELIST_KIND_CLIENT,
  recipient: greylist.WhitelistKind.WHITELIST_KIND_RECIPIENT,
};

const iso = (d?: Date) => (d ? d.toISOString().replace('.000Z', 'Z') : '-');

/** `smtpguard greylist ...`: the admin RPCs of the greylist service. Returns the exit code. */
export async function greylistCommand(
  args: string[],
  address: string,
  out: (line: string) => void,
  /** Who makes the change; the service records it with the decision. */
  operator = 'unknown',
): Promise<number> {
  const client = createClient(greylist.GreylistServiceClient, address);
  const call = <Req, Res>(method: Parameters<typeof unary<Req, Res>>[2], req: Req) =>
    unary('greylist', client, method, req, 10_000, operatorMetadata(operator));
  try {
    const [sub, ...rest] = args;
    const json = takeFlag(rest, '--json');
    const limitAt = rest.indexOf('--limit');
    const limit = limitAt >= 0 ? Number(rest.splice(limitAt, 2)[1]) : 100;
    /** The answer as JSON with --json, else as text. */
    const show = <T>(type: { toJSON(m: T): unknown }, r: T, text: () => void) =>
      json ? out(JSON.stringify(type.toJSON(r))) : text();
    switch (sub) {
      case 'list': {
        const r = await call(client.listEntries, { query: rest[0] ?? '', limit });
        show(greylist.ListEntriesResponse, r, () => {
          out(['first seen', 'last seen', 'passed', 'passes', 'key'].join('\t'));
          for (const e of r.entries) {
            out([iso(e.firstSeen), iso(e.lastSeen), iso(e.passedAt), String(e.passCount), e.key].join('\t'));
          }
          if (r.truncated) out(`(more than ${limit}; use --limit)`);
        });
        return 0;
      }
      case 'delete': {
        if (!rest[0]) break;
        const r = await call(client.deleteEntry, { key: rest[0] });
        show(greylist.DeleteEntryResponse, r, () =>
          out(r.deleted ? `deleted ${rest[0]}` : `no such triplet: ${rest[0]}`),
        );
        return r.deleted ? 0 : 1;
      }
      case 'whitelist': {
        const [action, kind, value, ...comment] = rest;
        if (!action || action === 'list') {
          const r = await call(client.listWhitelist, {});
          show(greylist.ListWhitelistResponse, r, () => {
            for (const e of r.entries) {
              const k = e.kind === greylist.WhitelistKind.WHITELIST_KIND_CLIENT ? 'client' : 'recipient';
              out([k, e.value, iso(e.createdAt), e.comment].join('\t'));
            }
          });
          return 0;
        }
        const k = kinds[kind ?? ''];
        if (!k || !value) break;
        if (action === 'add') {
          const r = await call(client.addWhitelistEntry, {
            entry: { kind: k, value, comment: comment.join(' '), createdAt: undefined },
          });
          show(greylist.AddWhitelistEntryResponse, r, () => out(`whitelisted ${kind} ${value}`));
          return 0;
        }
        if (action === 'remove') {
          const r = await call(client.removeWhitelistEntry, { kind: k, value });
          show(greylist.RemoveWhitelistEntryResponse, r, () =>
            out(r.removed ? `removed ${kind} ${value}` : `not on the whitelist: ${kind} ${value}`),
          );
          return r.removed ? 0 : 1;
        }
        break;
      }
      case 'stats': {
        const r = await call(client.getStats, {});
        show(greylist.GetStatsResponse, r, () => {
          out(`triplets: ${r.triplets}`);
          out(`auto-whitelisted clients: ${r.autoWhitelistedClients}`);
          out(`whitelist entries: ${r.whitelistEntries}`);
        });
        return 0;
      }
    }
    out(`usage:\n${greylistUsage}`);
    return 2;
  } finally {
    client.close();
  }
}
