import { runService } from '@smtpguard/service-runtime';
import { Authenticator } from './authenticator.js';
import { Directory } from './directory.js';
import { authServiceBinding } from './transport/grpc.js';

runService('auth', async ({ config, logger }) => {
  let directory = new Directory(config.current.config.auth.domains);
  config.onChange((c) => {
    directory = new Directory(c.config.auth.domains);
  });
  logger.info({ domains: config.current.config.auth.domains.map((d) => d.name) }, 'directory loaded');
  const authenticator = new Authenticator(
    () => directory,
    () => config.current.config.auth.mechanisms,
  );
  return {
    grpc: {
      listen: (c) => c.auth.listen,
      bindings: [authServiceBinding({ directory: () => directory, authenticator })],
    },
  };
});
