import { status } from '@grpc/grpc-js';
import { greylist } from '@smtpguard/contracts';
import type { DecisionRecorder } from '@smtpguard/decisions';
import { GrpcStatusError, notImplemented, type ServiceBinding, unaryHandler } from '@smtpguard/grpc-kit';
import type { Greylister } from '../greylister.js';
import type { TripletStore } from '../store/store.js';

const toDate = (s: number) => (s ? new Date(s * 1000) : undefined);

export function greylistServiceBinding(deps: {
  greylister: Greylister;
  store: TripletStore;
  decisions: DecisionRecorder;
}): ServiceBinding {
  const implementation: greylist.GreylistServiceServer = {
    check: unaryHandler(async (req: greylist.CheckRequest) => {
      const session = req.session;
      if (!session?.clientIp || !req.recipient) {
        throw new GrpcStatusError(status.INVALID_ARGUMENT, 'session.client_ip and recipient are required');
      }
      const started = performance.now();
      const r = await deps.greylister.check({
        clientIp: session.clientIp,
        sender: session.sender,
        recipient: req.recipient,
        authenticated: Boolean(session.authenticatedUser),
        trusted: session.trusted,
        spfPassDomain: req.spfPassDomain,
        dnswlListed: req.dnswlListed,
      });
      deps.decisions.record({
        phase: 'rcpt',
        check: 'greylist',
        outcome:
          r.reasonCode === 'greylist.skipped_authenticated' ? 'skip' : r.action === 'pass' ? 'pass' : 'defer',
        reasonCode: r.reasonCode,
        session,
        recipient: req.recipient,
        latencyMs: performance.now() - started,
        attributes: { triplet: r.key, ...(r.rule ? { rule: r.rule } : {}) },
      });
      return greylist.CheckResponse.fromPartial({
        action: r.action === 'pass' ? greylist.Action.ACTION_PASS : greylist.Action.ACTION_DEFER,
        reasonCode: r.reasonCode,
        retryAfterSeconds: r.retryAfterSeconds,
        delayedSeconds: r.delayedSeconds,
        tripletKey: r.key,
        whitelistRule: r.rule,
      });
    }),
    listEntries: unaryHandler(async (req: greylist.ListEntriesRequest) => {
      const limit = req.limit || 100;
      const rows = await deps.store.list(req.query, limit + 1);
      return greylist.ListEntriesResponse.fromPartial({
        truncated: rows.length > limit,
        entries: rows.slice(0, limit).map(([key, r]) => {
          const [client = '', sender = '', recipient = ''] = key.split('|');
          return {
            key,
            client,
            sender,
            recipient,
            firstSeen: toDate(r.firstSeen),
            lastSeen: toDate(r.lastSeen),
            passedAt: toDate(r.passedAt),
            passCount: r.passCount,
          };
        }),
      });
    }),
    deleteEntry: unaryHandler(async (req: greylist.DeleteEntryRequest) =>
      greylist.DeleteEntryResponse.fromPartial({ deleted: await deps.store.delete(req.key) }),
    ),
    getStats: unaryHandler(async () =>
      greylist.GetStatsResponse.fromPartial({ triplets: await deps.store.count() }),
    ),
    listWhitelist: notImplemented('ListWhitelist'),
    addWhitelistEntry: notImplemented('AddWhitelistEntry'),
    removeWhitelistEntry: notImplemented('RemoveWhitelistEntry'),
  };
  return {
    name: 'smtpguard.greylist.v1.GreylistService',
    definition: greylist.GreylistServiceService,
    implementation,
  };
}
