import type { LoadedConfig } from '@smtpguard/config';
import type { RunningServices } from '@smtpguard/service-runtime';

/**
 * Starts the four services in this process (the one-process mode of `pnpm start`): the backends first, then the
 * edge, which calls them directly instead of over gRPC. Each still serves its gRPC port (the `smtpguard`
 * command, health checks), writes its own log lines and decisions, and is stopped in reverse order.
 * The services are imported here, after the telemetry preload (`@smtpguard/telemetry/register`) has run.
 */
export async function startOneProcess(loaded: LoadedConfig): Promise<RunningServices> {
  const [{ startServices }, { buildAuth }, { buildReputation }, { buildGreylist }, { startEdge }] =
    await Promise.all([
      import('@smtpguard/service-runtime'),
      import('@smtpguard/auth'),
      import('@smtpguard/reputation'),
      import('@smtpguard/greylist'),
      import('@smtpguard/smtp-edge'),
    ]);
  return startServices(
    loaded,
    [
      { name: 'auth', build: buildAuth },
      { name: 'reputation', build: buildReputation },
      { name: 'greylist', build: buildGreylist },
      { name: 'smtp-edge', build: startEdge },
    ],
    'smtpguard',
  );
}
