/**
 * Test support shared by the smtp-edge unit tests: hand-made check contexts, fake backends and a fake next
 * hop, a decision recorder that keeps what it records, and a runner over a single phase. It is named like a
 * test file because it is part of the tests, not of the service. It must not declare tests itself: every test
 * file that imports it would run them again (the guards of the fakes are tested in engine/runner.test.ts).
 */
import { Writable } from 'node:stream';
import { status } from '@grpc/grpc-js';
import type { Context } from '@opentelemetry/api';
import { type Config, parseConfig } from '@smtpguard/config';
import type { auth, events, greylist, reputation } from '@smtpguard/contracts';
import { type DecisionInput, DecisionRecorder } from '@smtpguard/decisions';
import { BackendError } from '@smtpguard/grpc-kit';
import { createLogger, type Logger } from '@smtpguard/logging';
import { ClientRules } from '@smtpguard/networks';
import type { BackendName, Backends } from './backends.js';
import { LookupCaches } from './cache/lookups.js';
import { type DataFacts, emptyFacts } from './data/inspector.js';
import type { HopEnvelope, HopReply, HopTransaction, NextHop } from './delivery/next-hop.js';
import type { Check, CheckContext, EngineDeps, Phase, PhaseInputs, Verdict } from './engine/check.js';
import { ReplyError } from './engine/reply.js';
import { type DecisionScope, type PhaseLists, Runner } from './engine/runner.js';
import { type ListenerName, type Params, RecipientState, Session } from './session.js';
import { ConnectionTracker } from './smtp/limits.js';

export const silentLogger: Logger = createLogger('test', { level: 'silent' });

/** A full configuration with defaults, from YAML text. */
export function config(yaml = ''): Config {
  return parseConfig(yaml);
}

export function newSession(o: { listener?: ListenerName; ip?: string } = {}): Session {
  return new Session('s1', o.listener ?? 'mx', o.ip ?? '192.0.2.7', 25000, 'test', 'mx.example.test');
}

/** Waits (a macrotask at a time) until `cond` holds. */
export async function until(cond: () => boolean, timeoutMs = 1000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export function facts(overrides: Partial<DataFacts> = {}): DataFacts {
  return { ...emptyFacts(), complete: true, ...overrides };
}

// --- decisions -------------------------------------------------------------------------------------

/** A real DecisionRecorder whose publisher keeps the events; `inputs` keeps what the runner recorded. */
export class CollectingRecorder extends DecisionRecorder {
  readonly inputs: DecisionInput[] = [];
  readonly published: events.Decision[];

  constructor() {
    const published: events.Decision[] = [];
    super(
      'smtp-edge',
      {
        publish: (d) => {
          published.push(d);
        },
        close: async () => undefined,
      },
      silentLogger,
    );
    this.published = published;
  }

  override record(input: DecisionInput, ctx?: Context): events.Decision {
    this.inputs.push(input);
    return super.record(input, ctx);
  }
}

// --- backends --------------------------------------------------------------------------------------

interface Methods {
  authenticate: [auth.AuthenticateRequest, auth.AuthenticateResponse];
  resolveRecipient: [auth.ResolveRecipientRequest, auth.ResolveRecipientResponse];
  checkAccount: [auth.CheckAccountRequest, auth.CheckAccountResponse];
  resolveSender: [auth.ResolveSenderRequest, auth.ResolveSenderResponse];
  checkPopBeforeSmtp: [auth.CheckPopBeforeSmtpRequest, auth.CheckPopBeforeSmtpResponse];
  consumeSendingQuota: [auth.ConsumeSendingQuotaRequest, auth.ConsumeSendingQuotaResponse];
  checkClient: [reputation.CheckClientRequest, reputation.CheckClientResponse];
  checkSender: [reputation.CheckSenderRequest, reputation.CheckSenderResponse];
  checkHelo: [reputation.CheckHeloRequest, reputation.CheckHeloResponse];
  checkSenderDomain: [reputation.CheckSenderDomainRequest, reputation.CheckSenderDomainResponse];
  checkContent: [reputation.CheckContentRequest, reputation.CheckContentResponse];
  /** Client streaming: the handler gets every request of the stream. */
  verifyMessage: [reputation.VerifyMessageRequest[], reputation.VerifyMessageResponse];
  check: [greylist.CheckRequest, greylist.CheckResponse];
}
export type MethodName = keyof Methods;
export type Handlers = {
  [M in MethodName]?: (request: Methods[M][0]) => Methods[M][1] | Promise<Methods[M][1]>;
};

const OWNER: Record<MethodName, BackendName> = {
  authenticate: 'auth',
  resolveRecipient: 'auth',
  checkAccount: 'auth',
  resolveSender: 'auth',
  checkPopBeforeSmtp: 'auth',
  consumeSendingQuota: 'auth',
  checkClient: 'reputation',
  checkSender: 'reputation',
  checkHelo: 'reputation',
  checkSenderDomain: 'reputation',
  checkContent: 'reputation',
  verifyMessage: 'reputation',
  check: 'greylist',
};

export interface BackendCall {
  backend: BackendName;
  method: MethodName;
  request: unknown;
}

/**
 * Stands in for Backends: the client methods are stubs that only identify the method, and call() dispatches
 * to the handler given for it. A method without a handler, or called with the wrong backend name, fails.
 */
export class FakeBackends {
  readonly calls: BackendCall[] = [];
  private readonly methods = new Map<unknown, MethodName>();
  readonly auth = {
    authenticate: this.stub('authenticate'),
    resolveRecipient: this.stub('resolveRecipient'),
    checkAccount: this.stub('checkAccount'),
    resolveSender: this.stub('resolveSender'),
    checkPopBeforeSmtp: this.stub('checkPopBeforeSmtp'),
    consumeSendingQuota: this.stub('consumeSendingQuota'),
  };
  readonly reputation = {
    checkClient: this.stub('checkClient'),
    checkSender: this.stub('checkSender'),
    checkHelo: this.stub('checkHelo'),
    checkSenderDomain: this.stub('checkSenderDomain'),
    checkContent: this.stub('checkContent'),
    verifyMessage: this.stub('verifyMessage'),
  };
  readonly greylist = { check: this.stub('check') };
  private readonly handlers: Handlers;

  constructor(handlers: Handlers = {}) {
    this.handlers = handlers;
  }

  /** The requests made to one method. */
  requests<M extends MethodName>(method: M): Array<Methods[M][0]> {
    return this.calls.filter((c) => c.method === method).map((c) => c.request as Methods[M][0]);
  }

  async call(backend: BackendName, method: unknown, request: unknown): Promise<unknown> {
    const name = this.methods.get(method);
    if (!name) throw new Error('call() with a method that is not a backend client method');
    if (OWNER[name] !== backend) throw new Error(`${name} called on backend ${backend}`);
    this.calls.push({ backend, method: name, request });
    const handler = this.handlers[name] as ((req: unknown) => unknown) | undefined;
    if (!handler) throw new Error(`unexpected backend call ${backend}.${name}`);
    return handler(request);
  }

  /** A client-streaming call: the handler gets the requests as one array. */
  async stream(backend: BackendName, method: unknown, requests: AsyncIterable<unknown>): Promise<unknown> {
    const all: unknown[] = [];
    for await (const r of requests) all.push(r);
    return this.call(backend, method, all);
  }

  /** As EngineDeps wants it. */
  get asBackends(): Backends {
    return this as unknown as Backends;
  }

  private stub(name: MethodName): () => never {
    const fn = (): never => {
      throw new Error(`${name} must be called through call()`);
    };
    this.methods.set(fn, name);
    return fn;
  }
}

/** What a gRPC call that got no answer throws. */
export function backendDown(backend: BackendName, method: string, detail = 'down'): BackendError {
  return new BackendError(backend, method, status.UNAVAILABLE, detail);
}

// --- next hop --------------------------------------------------------------------------------------

export const HOP_OK: HopReply = { code: 250, enhanced: '2.1.5', text: 'OK' };

export interface FakeHopOptions {
  rcpt?: (address: string) => HopReply | Promise<HopReply>;
  data?: () => Promise<{ stream: Writable } | { refused: HopReply }>;
  commit?: () => HopReply | Promise<HopReply>;
}

/** A HopTransaction that records what it is asked; answers come from the options (default: 250). */
export class FakeHopTransaction implements HopTransaction {
  readonly offered: string[] = [];
  aborts = 0;
  commits = 0;
  dataCalls = 0;

  constructor(private readonly opts: FakeHopOptions = {}) {}

  async rcpt(address: string): Promise<HopReply> {
    this.offered.push(address);
    return this.opts.rcpt ? this.opts.rcpt(address) : HOP_OK;
  }

  async data(): Promise<{ stream: Writable } | { refused: HopReply }> {
    this.dataCalls += 1;
    if (this.opts.data) return this.opts.data();
    return { stream: new CollectingSink() };
  }

  async commit(): Promise<HopReply> {
    this.commits += 1;
    return this.opts.commit ? this.opts.commit() : { code: 250, enhanced: '2.0.0', text: 'OK' };
  }

  abort(): void {
    this.aborts += 1;
  }
}

export class FakeNextHop implements NextHop {
  readonly envelopes: HopEnvelope[] = [];

  constructor(
    readonly transaction: FakeHopTransaction = new FakeHopTransaction(),
    readonly maxRecipients = 0,
  ) {}

  describe(): string {
    return 'smtp://10.0.0.5:25';
  }

  begin(envelope: HopEnvelope): HopTransaction {
    this.envelopes.push(envelope);
    return this.transaction;
  }

  async close(): Promise<void> {}
}

/** A Writable that keeps what it is given; `fail(n)` makes its n-th write (1-based) fail. */
export class CollectingSink extends Writable {
  readonly chunks: Buffer[] = [];
  private writes = 0;

  constructor(private readonly failAt = 0) {
    super();
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.writes += 1;
    if (this.writes === this.failAt) {
      done(new Error('connection to the next hop lost'));
      return;
    }
    this.chunks.push(chunk);
    done();
  }
}

// --- contexts and runs -----------------------------------------------------------------------------

export interface ContextOptions<P extends Phase> {
  input: PhaseInputs[P];
  cfg?: Config;
  session?: Session;
  backends?: FakeBackends;
  nextHop?: NextHop;
  trusted?: string[];
  connections?: ConnectionTracker;
  caches?: LookupCaches;
  rcpt?: RecipientState;
}

/** A check context as the runner builds it (tx is the session's transaction). */
export function checkContext<P extends Phase>(_phase: P, o: ContextOptions<P>): CheckContext<P> {
  const session = o.session ?? newSession();
  const nextHop = o.nextHop ?? new FakeNextHop();
  const trusted = new ClientRules(o.trusted ?? []);
  const caches =
    o.caches ??
    new LookupCaches({
      directorySeconds: 0,
      clientReputationSeconds: 0,
      senderChecksSeconds: 0,
      maxEntries: 0,
    });
  const deps: EngineDeps = {
    backends: (o.backends ?? new FakeBackends()).asBackends,
    nextHop: () => nextHop,
    trusted: () => trusted,
    connections: o.connections ?? new ConnectionTracker(),
    // No caching unless a test asks for it: checks called twice ask their (fake) backend twice.
    caches: () => caches,
  };
  const ctx = { cfg: o.cfg ?? config(), session, deps, input: o.input, tx: session.tx, rcpt: o.rcpt };
  return ctx as unknown as CheckContext<P>;
}

/** A RCPT context: the session gets a transaction from alice@example.org when it has none. */
export function rcptContext(
  address: string,
  o: Omit<ContextOptions<'rcpt'>, 'input' | 'rcpt'> & { params?: Params } = {},
): CheckContext<'rcpt'> {
  const session = o.session ?? newSession();
  if (!session.tx) session.beginTransaction('alice@example.org', {});
  const params = o.params ?? {};
  return checkContext('rcpt', {
    ...o,
    session,
    input: { address, params },
    rcpt: new RecipientState(address, params),
  });
}

/** A MAIL context: the session's transaction is begun from `address`, as the SMTP layer does. */
export function mailContext(
  address: string,
  o: Omit<ContextOptions<'mail'>, 'input'> & { params?: Params } = {},
): CheckContext<'mail'> {
  const session = o.session ?? newSession();
  const params = o.params ?? {};
  session.beginTransaction(address, params);
  return checkContext('mail', { ...o, session, input: { address, params } });
}

export interface PhaseResult {
  verdicts: Verdict[];
  /** The refusal the phase ended with. */
  refusal: ReplyError | undefined;
  records: DecisionInput[];
}

/** Runs `checks` as the phase's whole list through a Runner, collecting decisions. */
export async function runPhase<P extends Phase>(
  phase: P,
  checks: ReadonlyArray<Check<P>>,
  ctx: CheckContext<P>,
  scope: DecisionScope = {},
): Promise<PhaseResult> {
  const recorder = new CollectingRecorder();
  const lists = {
    connect: [],
    helo: [],
    auth: [],
    mail: [],
    rcpt: [],
    data: [],
    queue: [],
    [phase]: checks,
  } as unknown as PhaseLists;
  const runner = new Runner(lists, ctx.deps, recorder, silentLogger);
  try {
    const verdicts = await runner.run(phase, ctx, scope);
    return { verdicts, refusal: undefined, records: recorder.inputs };
  } catch (err) {
    if (!(err instanceof ReplyError)) throw err;
    return { verdicts: [], refusal: err, records: recorder.inputs };
  }
}

/** The only decision of a run (fails when there is not exactly one). */
export function only(records: DecisionInput[]): DecisionInput {
  if (records.length !== 1) {
    throw new Error(`expected one decision, got ${records.map((r) => r.reasonCode).join(', ') || 'none'}`);
  }
  return records[0] as DecisionInput;
}
