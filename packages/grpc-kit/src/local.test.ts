// In-process calls (the one-process mode) against the same binding served over real gRPC: the same answers and
// the same BackendError codes either way, deadlines kept, requests pulled as the handler reads them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Client, makeGenericClientConstructor, type ServiceDefinition, status } from '@grpc/grpc-js';
import { createLogger } from '@smtpguard/logging';
import { BackendError, clientStream, createClient, unary } from './client.js';
import { clientStreamHandler, GrpcStatusError, unaryHandler } from './handlers.js';
import { LocalServices, localClientStream, localUnary, type MethodRef } from './local.js';
import { type RunningGrpcServer, type ServiceBinding, startGrpcServer } from './server.js';

interface Num {
  n: number;
}
const json = {
  serialize: (x: Num) => Buffer.from(JSON.stringify(x)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as Num,
};
const method = (name: string, requestStream: boolean) => ({
  path: `/smtpguard.test.v1.Calc/${name}`,
  requestStream,
  responseStream: false,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
  originalName: name.toLowerCase(),
});
const Calc = {
  double: method('Double', false),
  sum: method('Sum', true),
} as unknown as ServiceDefinition;

/** How many requests the Sum handler had read when it answered. */
const seen: number[] = [];
const binding: ServiceBinding = {
  name: 'smtpguard.test.v1.Calc',
  definition: Calc,
  implementation: {
    double: unaryHandler(async (req: Num) => {
      if (req.n < 0) throw new GrpcStatusError(status.INVALID_ARGUMENT, 'n must not be negative');
      if (req.n === 13) return new Promise<Num>(() => undefined); // never answers
      if (req.n === 7) throw new Error('seven is broken');
      return { n: req.n * 2 };
    }),
    sum: clientStreamHandler(async (requests: AsyncIterable<Num>) => {
      let n = 0;
      let count = 0;
      for await (const r of requests) {
        count++;
        if (r.n < 0) break; // stops reading: the rest of the stream is never asked for
        n += r.n;
      }
      seen.push(count);
      return { n };
    }),
  },
};

type Unary = Parameters<typeof unary<Num, Num>>[2];
type Stream = Parameters<typeof clientStream<Num, Num>>[2];
let server: RunningGrpcServer;
let client: Client & { double: Unary; sum: Stream };
const local = new LocalServices();
local.add(binding);

before(async () => {
  server = await startGrpcServer('127.0.0.1:0', [binding], createLogger('test', { level: 'silent' }));
  const Ctor = makeGenericClientConstructor(Calc, 'Calc');
  client = createClient(Ctor, `127.0.0.1:${server.port}`) as unknown as typeof client;
});
after(async () => {
  client?.close();
  await server?.shutdown(100);
});

const handlerOf = (m: MethodRef) => {
  const h = local.handler(m);
  assert.ok(h, `a local handler for ${m.path}`);
  return h;
};
const overGrpc = (n: number, deadlineMs = 2000) =>
  unary<Num, Num>('calc', client, client.double, { n }, deadlineMs);
const inProcess = (n: number, deadlineMs = 2000) =>
  localUnary<Num, Num>('calc', handlerOf(client.double), client.double, { n }, deadlineMs);
const failure = (p: Promise<unknown>) =>
  p.then(
    () => assert.fail('expected a BackendError'),
    (err: unknown) => {
      assert.ok(err instanceof BackendError, String(err));
      return err;
    },
  );
async function* numbers(list: number[], produced?: { count: number }): AsyncGenerator<Num> {
  for (const n of list) {
    if (produced) produced.count++;
    yield { n };
  }
}

describe('LocalServices', () => {
  it('serves a definition only when every method of it was added', () => {
    assert.equal(local.serves(Calc), true);
    const other = { ...Calc, extra: method('Extra', false) } as unknown as ServiceDefinition;
    assert.equal(local.serves(other), false);
    assert.equal(new LocalServices().serves(Calc), false);
  });

  it('a unary call answers as over gRPC', async () => {
    assert.deepEqual(await inProcess(21), await overGrpc(21));
    assert.deepEqual(await inProcess(21), { n: 42 });
  });

  it('a handler error is the same BackendError as over gRPC: its status, backend and detail', async () => {
    const [remote, here] = await Promise.all([failure(overGrpc(-1)), failure(inProcess(-1))]);
    assert.equal(here.code, status.INVALID_ARGUMENT);
    assert.equal(here.code, remote.code);
    assert.equal(here.message, remote.message);
    assert.match(here.message, /^calc\..*: INVALID_ARGUMENT: n must not be negative$/);
    const [remote7, here7] = await Promise.all([failure(overGrpc(7)), failure(inProcess(7))]);
    assert.equal(here7.code, status.INTERNAL);
    assert.equal(here7.code, remote7.code);
  });

  it('a handler that does not answer fails with DEADLINE_EXCEEDED at the deadline', async () => {
    const started = performance.now();
    const err = await failure(inProcess(13, 150));
    const took = performance.now() - started;
    assert.equal(err.code, status.DEADLINE_EXCEEDED);
    assert.equal((await failure(overGrpc(13, 150))).code, status.DEADLINE_EXCEEDED);
    assert.ok(took >= 140 && took < 2000, `failed after ${took} ms`);
  });

  it('a client stream answers as over gRPC, the handler pulling the requests', async () => {
    const list = [1, 2, 3, 4];
    const remote = await clientStream<Num, Num>('calc', client, client.sum, numbers(list), 2000);
    const here = await localClientStream<Num, Num>(
      'calc',
      handlerOf(client.sum),
      client.sum,
      numbers(list),
      2000,
    );
    assert.deepEqual(here, remote);
    assert.deepEqual(here, { n: 10 });
    // A handler that stops reading gets no more: nothing past what it asked for is produced.
    const produced = { count: 0 };
    seen.length = 0;
    const partial = await localClientStream<Num, Num>(
      'calc',
      handlerOf(client.sum),
      client.sum,
      numbers([5, -1, 100, 100, 100], produced),
      2000,
    );
    assert.deepEqual(partial, { n: 5 });
    assert.deepEqual(seen, [2]);
    assert.equal(produced.count, 2);
  });

  it("an error of the caller's own request stream is thrown as it is, not as a BackendError", async () => {
    const broken = new Error('message file vanished');
    async function* failing(): AsyncGenerator<Num> {
      yield { n: 1 };
      throw broken;
    }
    await assert.rejects(
      localClientStream<Num, Num>('calc', handlerOf(client.sum), client.sum, failing(), 2000),
      (err) => err === broken,
    );
    await assert.rejects(
      clientStream<Num, Num>('calc', client, client.sum, failing(), 2000),
      (err) => err === broken,
    );
  });

  it('a call names no local handler for a method it does not serve', () => {
    assert.equal(local.handler({ name: 'x', path: '/smtpguard.test.v1.Calc/Nope' }), undefined);
    assert.equal(local.handler({ name: 'x' }), undefined);
  });
});
