import { natsServers } from '@smtpguard/config';
import type { ServiceContext, ServiceParts } from '@smtpguard/service-runtime';
import { Authenticator } from './authenticator.js';
import { type Directory, directoryFrom } from './directory.js';
import { LoginRecorder } from './logins.js';
import { openAuthState } from './state/index.js';
import { startDovecotPolicy } from './transport/dovecot-policy.js';
import { authServiceBinding } from './transport/grpc.js';
import { subscribeLoginEvents } from './transport/login-events.js';

/** The auth service: its state, its gRPC binding and transports, how it stops. */
export async function buildAuth({ config, logger, decisions }: ServiceContext): Promise<ServiceParts> {
  const cfg = () => config.current.config;
  let directory: Directory = directoryFrom(cfg().auth);
  config.onChange((c) => {
    try {
      directory = directoryFrom(c.config.auth);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'auth.domains rejected; keeping the previous directory');
    }
  });
  logger.info({ domains: cfg().auth.domains.map((d) => d.name) }, 'directory loaded');
  const state = await openAuthState(config.current, () => config.current);
  const authenticator = new Authenticator(
    () => directory,
    () => cfg().auth,
    state.lockout,
  );
  const logins = new LoginRecorder(
    () => directory,
    state.logins,
    state.lockout,
    () => cfg().auth.popBeforeSmtp.enabled,
  );
  const pop = cfg().auth.popBeforeSmtp;
  const policy = pop.dovecotPolicyListen
    ? await startDovecotPolicy(
        pop.dovecotPolicyListen,
        () => cfg().auth.popBeforeSmtp.dovecotPolicyAuthorization,
        logins,
        logger,
      )
    : undefined;
  const servers = natsServers(cfg());
  const events =
    pop.enabled && servers.length
      ? await subscribeLoginEvents(
          servers,
          pop.natsSubject,
          logins,
          logger,
          `smtpguard-auth-logins-${cfg().instance}`,
        )
      : undefined;
  return {
    grpc: {
      listen: (c) => c.auth.listen,
      bindings: [authServiceBinding({ directory: () => directory, authenticator, state, logins, decisions })],
    },
    stop: async () => {
      await policy?.close();
      await events?.close();
      await state.store.close();
    },
  };
}
