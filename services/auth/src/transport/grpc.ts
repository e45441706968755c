import { auth } from '@smtpguard/contracts';
import { notImplemented, type ServiceBinding, unaryHandler } from '@smtpguard/grpc-kit';
import type { Authenticator } from '../authenticator.js';
import type { Directory } from '../directory.js';

/** gRPC transport of the auth service: maps requests to the directory and authenticator. */
export function authServiceBinding(deps: {
  directory: () => Directory;
  authenticator: Authenticator;
}): ServiceBinding {
  const implementation: auth.AuthServiceServer = {
    authenticate: unaryHandler(async (req: auth.AuthenticateRequest) => {
      const out = await deps.authenticator.authenticate(req.mechanism, req.username, req.password);
      return auth.AuthenticateResponse.fromPartial({
        result: out.result,
        account: out.account,
        reasonCode: out.reasonCode,
      });
    }),
    resolveRecipient: unaryHandler(async (req: auth.ResolveRecipientRequest) => {
      const r = deps.directory().resolveRecipient(req.address);
      return auth.ResolveRecipientResponse.fromPartial(r);
    }),
    checkAccount: unaryHandler(async (req: auth.CheckAccountRequest) =>
      auth.CheckAccountResponse.fromPartial({ state: deps.directory().accountState(req.account) }),
    ),
    resolveSender: notImplemented('ResolveSender'),
    checkPopBeforeSmtp: notImplemented('CheckPopBeforeSmtp'),
    recordLogin: notImplemented('RecordLogin'),
    consumeSendingQuota: notImplemented('ConsumeSendingQuota'),
  };
  return { name: 'smtpguard.auth.v1.AuthService', definition: auth.AuthServiceService, implementation };
}
