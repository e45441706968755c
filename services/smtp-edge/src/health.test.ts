import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { configSchema } from '@smtpguard/config';
import { startGrpcServer } from '@smtpguard/grpc-kit';
import { type BackendName, Backends } from './backends.js';
import { silentLogger } from './fakes.test.js';
import { type HealthDeps, readiness, startHealthServer } from './health.js';

const defaults = configSchema.parse({}).edge;

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function deps(up: Partial<Record<BackendName, boolean>>, serving = true): HealthDeps {
  return {
    settings: () => defaults.health,
    reachable: async (name) => up[name] ?? true,
    serving: () => serving,
  };
}

async function get(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('edge readiness', () => {
  it('by default requires auth only: greylist (fail-open) being down keeps the edge ready', async () => {
    assert.deepEqual(defaults.health.requireBackends, ['auth']);
    const r = await readiness(deps({ greylist: false, reputation: false }));
    assert.equal(r.ready, true);
    assert.equal(r.backends.greylist, 'unreachable');
    const down = await readiness(deps({ auth: false }));
    assert.equal(down.ready, false);
    assert.deepEqual(down.reasons, ['auth unreachable']);
  });

  it('is not ready while not serving (draining)', async () => {
    const r = await readiness(deps({}, false));
    assert.equal(r.ready, false);
    assert.match(r.reasons.join(), /draining/);
  });

  it('serves /healthz and /readyz over HTTP, 503 with the reasons when not ready', async () => {
    let authUp = true;
    const server = await startHealthServer(
      '127.0.0.1:0',
      { ...deps({}), reachable: async (name) => name !== 'auth' || authUp },
      silentLogger,
    );
    try {
      assert.equal((await get(server.port, '/healthz')).status, 200);
      assert.equal((await get(server.port, '/readyz')).status, 200);
      authUp = false;
      const r = await get(server.port, '/readyz');
      assert.equal(r.status, 503);
      assert.deepEqual(r.body.reasons, ['auth unreachable']);
      assert.equal((await get(server.port, '/healthz')).status, 200, 'still alive');
      assert.equal((await get(server.port, '/nope')).status, 404);
    } finally {
      await server.close();
    }
  });

  it('Backends.reachable: true for a running gRPC backend, false for a closed port within the timeout', async () => {
    const grpc = await startGrpcServer('127.0.0.1:0', [], silentLogger);
    const dead = await closedPort();
    const backends = new Backends({
      auth: { address: `127.0.0.1:${grpc.port}`, deadlineMs: 1000 },
      reputation: { address: `127.0.0.1:${dead}`, deadlineMs: 1000 },
      greylist: { address: `127.0.0.1:${grpc.port},127.0.0.1:${dead}`, deadlineMs: 1000 },
    });
    try {
      assert.equal(await backends.reachable('auth', 2000), true);
      const started = Date.now();
      assert.equal(await backends.reachable('reputation', 300), false);
      assert.ok(Date.now() - started < 2000, 'gives up after the timeout');
      assert.equal(await backends.reachable('greylist', 2000), true, 'one replica of two is enough');
      await grpc.shutdown(100);
      // The channel notices the server is gone; readiness follows.
      let up = true;
      for (let i = 0; i < 20 && up; i++) {
        up = await backends.reachable('auth', 200);
        if (up) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(up, false, 'auth unreachable once its server stopped');
    } finally {
      backends.close();
    }
  });
});
