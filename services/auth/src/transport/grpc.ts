import { type Metadata, status } from '@grpc/grpc-js';
import { auth } from '@smtpguard/contracts';
import type { DecisionRecorder } from '@smtpguard/decisions';
import { GrpcStatusError, operatorOf, type ServiceBinding, unaryHandler } from '@smtpguard/grpc-kit';
import { type ReasonCode, reason, render } from '@smtpguard/reasons';
import type { Authenticator } from '../authenticator.js';
import type { Directory } from '../directory.js';
import type { LoginRecorder } from '../logins.js';
import type { AuthState, LockoutKind } from '../state/index.js';

const date = (ms: number) => (ms ? new Date(ms) : undefined);
const HOUR_MS = 3600_000;

const kindOf = (k: auth.LockoutKind): LockoutKind | undefined =>
  k === auth.LockoutKind.LOCKOUT_KIND_ACCOUNT
    ? 'account'
    : k === auth.LockoutKind.LOCKOUT_KIND_CLIENT
      ? 'client'
      : undefined;

/** gRPC transport of the auth service: maps requests to the directory, authenticator and shared state. */
export function authServiceBinding(deps: {
  directory: () => Directory;
  authenticator: Authenticator;
  state: AuthState;
  logins: LoginRecorder;
  /** Where administrators' changes are recorded (with the operator's name). */
  decisions?: DecisionRecorder;
}): ServiceBinding {
  const { state } = deps;
  const admin = (code: ReasonCode, metadata: Metadata, attributes: Record<string, string>) => {
    const operator = operatorOf(metadata);
    deps.decisions?.admin(
      code,
      operator,
      attributes,
      render(reason(code).happened, { operator, ...attributes }),
    );
  };
  const account = (a: string) => {
    if (!a) throw new GrpcStatusError(status.INVALID_ARGUMENT, 'account is required');
    return a.toLowerCase();
  };
  const implementation: auth.AuthServiceServer = {
    authenticate: unaryHandler(async (req: auth.AuthenticateRequest) => {
      const out = await deps.authenticator.authenticate({
        mechanism: req.mechanism,
        username: req.username,
        password: req.password,
        authzid: req.authzid,
        clientIp: req.session?.clientIp ?? '',
      });
      return auth.AuthenticateResponse.fromPartial({
        result: out.result,
        account: out.account,
        reasonCode: out.reasonCode,
        retryAfterSeconds: out.retryAfterSeconds ?? 0,
        failures: out.failures ?? 0,
      });
    }),
    resolveRecipient: unaryHandler(async (req: auth.ResolveRecipientRequest) => {
      const r = deps.directory().resolveRecipient(req.address, {
        sender: req.session?.sender ?? '',
        account: req.account || req.session?.authenticatedUser || '',
      });
      return auth.ResolveRecipientResponse.fromPartial(r);
    }),
    resolveSender: unaryHandler(async (req: auth.ResolveSenderRequest) => {
      const r = deps
        .directory()
        .resolveSender(
          req.address,
          req.account || req.session?.authenticatedUser || '',
          req.session?.clientIp ?? '',
        );
      return auth.ResolveSenderResponse.fromPartial(r);
    }),
    checkAccount: unaryHandler(async (req: auth.CheckAccountRequest) => {
      let s = deps.directory().accountState(req.account);
      if (
        s === auth.AccountState.ACCOUNT_STATE_ACTIVE &&
        (await state.lockout.locked(req.account, ''))?.kind === 'account'
      )
        s = auth.AccountState.ACCOUNT_STATE_LOCKED_OUT;
      return auth.CheckAccountResponse.fromPartial({ state: s });
    }),
    checkPopBeforeSmtp: unaryHandler(async (req: auth.CheckPopBeforeSmtpRequest) => {
      const ip = req.session?.clientIp;
      if (!ip) throw new GrpcStatusError(status.INVALID_ARGUMENT, 'session.client_ip is required');
      const dir = deps.directory();
      const r = await state.logins.check(ip, req.session?.sender ?? '', (a, s) => dir.maySend(a, s));
      return auth.CheckPopBeforeSmtpResponse.fromPartial({ ...r, expiresAt: date(r.expiresAt) });
    }),
    recordLogin: unaryHandler(async (req: auth.RecordLoginRequest) => {
      if (!req.account || !req.clientIp)
        throw new GrpcStatusError(status.INVALID_ARGUMENT, 'account and client_ip are required');
      const r = await deps.logins.report({
        login: req.account,
        clientIp: req.clientIp,
        protocol: req.protocol,
        success: true,
        time: req.time?.getTime(),
      });
      if (!r.recorded)
        throw new GrpcStatusError(status.FAILED_PRECONDITION, 'auth.popBeforeSmtp.enabled is false');
      return auth.RecordLoginResponse.fromPartial({ expiresAt: date(r.expiresAt) });
    }),
    consumeSendingQuota: unaryHandler(async (req: auth.ConsumeSendingQuotaRequest) => {
      const acc = account(req.account);
      const limits = deps.directory().sendingLimits(acc);
      const r = await state.quota.consume(acc, req.messages, req.recipients, limits);
      return auth.ConsumeSendingQuotaResponse.fromPartial({
        allowed: r.allowed,
        reasonCode: r.reasonCode,
        limit: limits.messagesPerHour,
        used: r.usage.messages,
        recipientLimit: limits.recipientsPerHour,
        recipientsUsed: r.usage.recipients,
        resetsAt: date(r.usage.windowStart + HOUR_MS),
      });
    }),
    listLockouts: unaryHandler(async (req: auth.ListLockoutsRequest) => {
      const list = await state.lockout.list(req.query, req.limit || 100, req.lockedOnly);
      const entries = await Promise.all(
        list.map(async (l) => ({
          kind:
            l.kind === 'account'
              ? auth.LockoutKind.LOCKOUT_KIND_ACCOUNT
              : auth.LockoutKind.LOCKOUT_KIND_CLIENT,
          value: l.value,
          failures: l.failures,
          windowStarted: date((await state.lockout.counter(l.kind, l.value))?.windowStart ?? 0),
          lockedUntil: date(l.lockedUntil),
        })),
      );
      return auth.ListLockoutsResponse.fromPartial({ entries });
    }),
    clearLockout: unaryHandler(async (req: auth.ClearLockoutRequest, metadata) => {
      if (!req.value) throw new GrpcStatusError(status.INVALID_ARGUMENT, 'value is required');
      const cleared = await state.lockout.clear(kindOf(req.kind), req.value);
      admin('admin.lockout_cleared', metadata, { value: req.value, result: `${cleared} cleared` });
      return auth.ClearLockoutResponse.fromPartial({ cleared });
    }),
    getSendingCounters: unaryHandler(async (req: auth.GetSendingCountersRequest) => {
      const acc = account(req.account);
      const u = await state.quota.usage(acc);
      const l = deps.directory().sendingLimits(acc);
      return auth.GetSendingCountersResponse.fromPartial({
        account: acc,
        messages: u.messages,
        recipients: u.recipients,
        windowStarted: u.messages || u.recipients ? date(u.windowStart) : undefined,
        messageLimit: l.messagesPerHour,
        recipientLimit: l.recipientsPerHour,
        limitSource: l.source,
      });
    }),
    resetSendingCounters: unaryHandler(async (req: auth.ResetSendingCountersRequest, metadata) => {
      const acc = account(req.account);
      const reset = await state.quota.reset(acc);
      admin('admin.quota_reset', metadata, { account: acc, result: reset ? 'reset' : 'nothing to reset' });
      return auth.ResetSendingCountersResponse.fromPartial({ reset });
    }),
  };
  return { name: 'smtpguard.auth.v1.AuthService', definition: auth.AuthServiceService, implementation };
}
