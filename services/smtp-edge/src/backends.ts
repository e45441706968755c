import { type Client, connectivityState } from '@grpc/grpc-js';
import type { BackendConfig, Config } from '@smtpguard/config';
import { auth, greylist, reputation } from '@smtpguard/contracts';
import {
  clientStream,
  createClient,
  type LocalServices,
  localClientStream,
  localUnary,
  type MethodRef,
  unary,
} from '@smtpguard/grpc-kit';

export type BackendName = 'auth' | 'reputation' | 'greylist';

const DEFINITIONS = {
  auth: auth.AuthServiceService,
  reputation: reputation.ReputationServiceService,
  greylist: greylist.GreylistServiceService,
};

/**
 * gRPC clients of the three backend services, rebuilt when their address changes in the config. A service that
 * runs in this same process (the one-process mode of `pnpm start`) is called directly, without gRPC: the same
 * handler, request, deadline and errors, and its address setting is not used.
 */
export class Backends {
  auth!: auth.AuthServiceClient;
  reputation!: reputation.ReputationServiceClient;
  greylist!: greylist.GreylistServiceClient;
  private cfg!: Config['edge']['backends'];
  private readonly inProcess: Record<BackendName, boolean>;

  constructor(
    cfg: Config['edge']['backends'],
    private readonly local?: LocalServices,
  ) {
    this.inProcess = {
      auth: Boolean(local?.serves(DEFINITIONS.auth)),
      reputation: Boolean(local?.serves(DEFINITIONS.reputation)),
      greylist: Boolean(local?.serves(DEFINITIONS.greylist)),
    };
    this.update(cfg);
  }

  update(cfg: Config['edge']['backends']): void {
    const prev = this.cfg;
    this.cfg = cfg;
    if (prev?.auth.address !== cfg.auth.address) {
      this.auth?.close();
      this.auth = createClient(auth.AuthServiceClient, cfg.auth.address);
    }
    if (prev?.reputation.address !== cfg.reputation.address) {
      this.reputation?.close();
      this.reputation = createClient(reputation.ReputationServiceClient, cfg.reputation.address);
    }
    if (prev?.greylist.address !== cfg.greylist.address) {
      this.greylist?.close();
      this.greylist = createClient(greylist.GreylistServiceClient, cfg.greylist.address);
    }
  }

  settings(name: BackendName): BackendConfig {
    return this.cfg[name];
  }

  /** One unary call with the backend's deadline; failures throw BackendError. */
  call<Req, Res>(
    name: BackendName,
    method: Parameters<typeof unary<Req, Res>>[2],
    request: Req,
  ): Promise<Res> {
    const handler = this.inProcess[name] ? this.local?.handler(method as MethodRef) : undefined;
    if (handler) return localUnary(name, handler, method as MethodRef, request, this.cfg[name].deadlineMs);
    const client = this[name] as unknown as Client;
    return unary(name, client, method, request, this.cfg[name].deadlineMs);
  }

  /**
   * One client-streaming call (requests written with backpressure), with the backend's deadline or a longer
   * one for the whole stream.
   */
  stream<Req, Res>(
    name: BackendName,
    method: Parameters<typeof clientStream<Req, Res>>[2],
    requests: AsyncIterable<Req>,
    deadlineMs = this.cfg[name].deadlineMs,
  ): Promise<Res> {
    const handler = this.inProcess[name] ? this.local?.handler(method as MethodRef) : undefined;
    if (handler) return localClientStream(name, handler, method as MethodRef, requests, deadlineMs);
    const client = this[name] as unknown as Client;
    return clientStream(name, client, method, requests, deadlineMs);
  }

  /**
   * True when a replica of the backend accepts a connection (the channel is READY) within timeoutMs. An idle
   * channel is made to connect; with several replicas behind one DNS name, one reachable replica is enough.
   */
  reachable(name: BackendName, timeoutMs: number): Promise<boolean> {
    if (this.inProcess[name]) return Promise.resolve(true);
    const client = this[name] as unknown as Client;
    if (client.getChannel().getConnectivityState(true) === connectivityState.READY)
      return Promise.resolve(true);
    return new Promise((resolve) => client.waitForReady(Date.now() + timeoutMs, (err) => resolve(!err)));
  }

  close(): void {
    this.auth.close();
    this.reputation.close();
    this.greylist.close();
  }
}
