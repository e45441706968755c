import { type Metadata, status } from '@grpc/grpc-js';
import { greylist } from '@smtpguard/contracts';
import type { DecisionRecorder, Outcome } from '@smtpguard/decisions';
import { GrpcStatusError, operatorOf, type ServiceBinding, unaryHandler } from '@smtpguard/grpc-kit';
import { ClientRules } from '@smtpguard/networks';
import { type ReasonCode, reason, render } from '@smtpguard/reasons';
import type { CheckReason, Greylister } from '../greylister.js';
import type { GreylistStore, WhitelistKind } from '../store/store.js';

const toDate = (s: number) => (s ? new Date(s * 1000) : undefined);

const outcomes: Record<CheckReason, Outcome> = {
  'greylist.new': 'defer',
  'greylist.early_retry': 'defer',
  'greylist.passed': 'pass',
  'greylist.whitelisted': 'pass',
  'greylist.auto_whitelisted': 'pass',
  'greylist.skipped_authenticated': 'skip',
  'greylist.disabled_for_recipient': 'skip',
};

function kindOf(k: greylist.WhitelistKind): WhitelistKind {
  if (k === greylist.WhitelistKind.WHITELIST_KIND_CLIENT) return 'client';
  if (k === greylist.WhitelistKind.WHITELIST_KIND_RECIPIENT) return 'recipient';
  throw new GrpcStatusError(
    status.INVALID_ARGUMENT,
    'kind must be WHITELIST_KIND_CLIENT or WHITELIST_KIND_RECIPIENT',
  );
}

/** gRPC transport of the greylist service: Check for the edge, the rest for administrators. */
export function greylistServiceBinding(deps: {
  greylister: Greylister;
  store: GreylistStore;
  decisions: DecisionRecorder;
}): ServiceBinding {
  const { greylister, store, decisions } = deps;
  /** An administrator's change as a decision, with the operator's name. */
  const admin = (code: ReasonCode, metadata: Metadata, attributes: Record<string, string>) => {
    const operator = operatorOf(metadata);
    decisions.admin(code, operator, attributes, render(reason(code).happened, { operator, ...attributes }));
  };
  const implementation: greylist.GreylistServiceServer = {
    check: unaryHandler(async (req: greylist.CheckRequest) => {
      const session = req.session;
      if (!session?.clientIp || !req.recipient) {
        throw new GrpcStatusError(status.INVALID_ARGUMENT, 'session.client_ip and recipient are required');
      }
      const started = performance.now();
      let r: Awaited<ReturnType<Greylister['check']>>;
      try {
        r = await greylister.check({
          clientIp: session.clientIp,
          clientHostname: session.clientHostname,
          sender: session.sender,
          recipient: req.recipient,
          authenticated: Boolean(session.authenticatedUser),
          trusted: session.trusted,
          spfPassDomain: req.spfPassDomain,
          dnswlListed: req.dnswlListed,
        });
      } catch (err) {
        decisions.record({
          phase: 'rcpt',
          check: 'greylist',
          outcome: 'error',
          reasonCode: 'greylist.unavailable',
          detail: `greylist store failed: ${(err as Error).message}`,
          session,
          recipient: req.recipient,
          latencyMs: performance.now() - started,
          attributes: { error: (err as Error).message },
        });
        throw new GrpcStatusError(status.UNAVAILABLE, `greylist store failed: ${(err as Error).message}`);
      }
      decisions.record({
        phase: 'rcpt',
        check: 'greylist',
        outcome: outcomes[r.reasonCode],
        reasonCode: r.reasonCode,
        // What happened, with this check's values (the seconds to wait, the triplet), as the edge's decisions do.
        detail: render(reason(r.reasonCode).happened, {
          triplet: r.key,
          retry_after: r.retryAfterSeconds,
          delayed: r.delayedSeconds,
          rule: r.rule,
          recipient: req.recipient,
          client_ip: session.clientIp,
          session_id: session.sessionId,
        }),
        session,
        recipient: req.recipient,
        latencyMs: performance.now() - started,
        attributes: {
          ...(r.key ? { triplet: r.key } : {}),
          ...(r.client ? { client: r.client } : {}),
          ...(r.rule ? { rule: r.rule } : {}),
          ...(r.retryAfterSeconds ? { retry_after: String(r.retryAfterSeconds) } : {}),
          ...(r.delayedSeconds ? { delayed: String(r.delayedSeconds) } : {}),
        },
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
      const limit = Math.min(req.limit || 100, 10_000);
      const rows = await store.listTriplets(req.query, limit + 1);
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
    deleteEntry: unaryHandler(async (req: greylist.DeleteEntryRequest, metadata) => {
      const deleted = await store.deleteTriplet(req.key);
      admin('admin.greylist_deleted', metadata, {
        key: req.key,
        result: deleted ? 'deleted' : 'no such triplet',
      });
      return greylist.DeleteEntryResponse.fromPartial({ deleted });
    }),
    listWhitelist: unaryHandler(async () =>
      greylist.ListWhitelistResponse.fromPartial({
        entries: (await store.listWhitelist()).map((e) => ({
          kind:
            e.kind === 'client'
              ? greylist.WhitelistKind.WHITELIST_KIND_CLIENT
              : greylist.WhitelistKind.WHITELIST_KIND_RECIPIENT,
          value: e.value,
          comment: e.comment,
          createdAt: toDate(e.createdAt),
        })),
      }),
    ),
    addWhitelistEntry: unaryHandler(async (req: greylist.AddWhitelistEntryRequest, metadata) => {
      const e = req.entry;
      if (!e?.value) throw new GrpcStatusError(status.INVALID_ARGUMENT, 'entry.value is required');
      const kind = kindOf(e.kind);
      const value = e.value.trim().toLowerCase();
      if (kind === 'client') {
        try {
          new ClientRules([value]);
        } catch (err) {
          throw new GrpcStatusError(status.INVALID_ARGUMENT, (err as Error).message);
        }
      } else if (!/^(@?[^\s@]+(\.[^\s@]+)+|[^\s@]+@[^\s@]+|[^\s@]+)$/.test(value)) {
        throw new GrpcStatusError(
          status.INVALID_ARGUMENT,
          `"${value}" is not an address, local part or @domain`,
        );
      }
      await store.addWhitelist({ kind, value, comment: e.comment, createdAt: Math.floor(Date.now() / 1000) });
      greylister.invalidate();
      admin('admin.greylist_whitelist_added', metadata, { kind, value, comment: e.comment || 'no comment' });
      return {};
    }),
    removeWhitelistEntry: unaryHandler(async (req: greylist.RemoveWhitelistEntryRequest, metadata) => {
      const kind = kindOf(req.kind);
      const value = req.value.trim().toLowerCase();
      const removed = await store.removeWhitelist(kind, value);
      greylister.invalidate();
      admin('admin.greylist_whitelist_removed', metadata, {
        kind,
        value,
        result: removed ? 'removed' : 'was not on it',
      });
      return greylist.RemoveWhitelistEntryResponse.fromPartial({ removed });
    }),
    getStats: unaryHandler(async () => {
      const [triplets, whitelist] = await Promise.all([store.countTriplets(), store.listWhitelist()]);
      const threshold = Math.max(1, greylister.autoWhitelistThreshold());
      return greylist.GetStatsResponse.fromPartial({
        triplets,
        autoWhitelistedClients: await store.countClients(threshold),
        whitelistEntries: whitelist.length,
      });
    }),
  };
  return {
    name: 'smtpguard.greylist.v1.GreylistService',
    definition: greylist.GreylistServiceService,
    implementation,
  };
}
