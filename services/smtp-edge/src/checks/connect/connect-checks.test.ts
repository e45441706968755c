import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reputation } from '@smtpguard/contracts';
import { Runner } from '../../engine/runner.js';
import {
  backendDown,
  CollectingRecorder,
  checkContext,
  config,
  FakeBackends,
  newSession,
  only,
  runPhase,
  silentLogger,
  until,
} from '../../fakes.test.js';
import type { Session } from '../../session.js';
import { ConnectionTracker } from '../../smtp/limits.js';
import { clientReputation } from './client-reputation.js';
import { connectionLimits } from './connection-limits.js';
import { trustedNetwork } from './trusted-network.js';

describe('connection limits', () => {
  it('admits a client within the limits, recording nothing', async () => {
    const connections = new ConnectionTracker();
    const session = newSession();
    const r = await runPhase(
      'connect',
      [connectionLimits],
      checkContext('connect', { input: {}, session, connections }),
    );
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
    assert.equal(session.admitted, true);
    assert.equal(connections.open, 1);
  });

  it('refuses a client over its limit 421 4.7.0 and closes the connection', async () => {
    const cfg = config('edge:\n  listeners:\n    mx:\n      maxConnectionsPerClient: 1\n');
    const connections = new ConnectionTracker();
    const first = await runPhase(
      'connect',
      [connectionLimits],
      checkContext('connect', { input: {}, cfg, connections }),
    );
    assert.equal(first.refusal, undefined);
    const session = newSession();
    const r = await runPhase(
      'connect',
      [connectionLimits],
      checkContext('connect', { input: {}, cfg, connections, session }),
    );
    assert.deepEqual(r.refusal?.reply, {
      code: 421,
      enhanced: '4.7.0',
      text: 'Too many connections from 192.0.2.7, please try again later (ref s1)',
    });
    assert.equal(r.refusal?.close, true);
    assert.equal(r.refusal?.reason, 'connect.too_many_from_client');
    assert.equal(session.admitted, false);
    const d = only(r.records);
    assert.equal(d.outcome, 'defer');
    assert.equal(
      d.detail,
      '192.0.2.7 opened connection 2 on the mx listener (limit 1 per client; IPv6 counts per /64).',
    );
  });

  it('refuses when the edge is full with connect.too_busy', async () => {
    const cfg = config('edge:\n  maxConnections: 1\n');
    const connections = new ConnectionTracker();
    await runPhase(
      'connect',
      [connectionLimits],
      checkContext('connect', { input: {}, cfg, connections, session: newSession({ ip: '198.51.100.1' }) }),
    );
    const r = await runPhase(
      'connect',
      [connectionLimits],
      checkContext('connect', { input: {}, cfg, connections }),
    );
    assert.equal(r.refusal?.reason, 'connect.too_busy');
    assert.equal(r.refusal?.reply.text, 'mx.example.test is too busy, please try again later (ref s1)');
  });
});

describe('trusted network', () => {
  it('marks a client in edge.trustedNetworks trusted and names the rule', async () => {
    const session = newSession();
    const ctx = checkContext('connect', { input: {}, session, trusted: ['10.0.0.0/8', '192.0.2.0/24'] });
    const r = await runPhase('connect', [trustedNetwork], ctx);
    assert.equal(session.trustedRule, '192.0.2.0/24');
    assert.equal(session.authorized, true);
    const d = only(r.records);
    assert.equal(d.outcome, 'pass');
    assert.equal(d.reasonCode, 'connect.trusted');
    assert.deepEqual(d.attributes, { rule: '192.0.2.0/24' });
    assert.equal(d.detail, '192.0.2.7 matched 192.0.2.0/24 in edge.trustedNetworks.');
  });

  it('matches a client reported as IPv4-mapped IPv6', async () => {
    const session = newSession({ ip: '::ffff:192.0.2.7' });
    await runPhase(
      'connect',
      [trustedNetwork],
      checkContext('connect', { input: {}, session, trusted: ['192.0.2.7'] }),
    );
    assert.equal(session.trustedRule, '192.0.2.7');
  });

  it('records nothing for any other client', async () => {
    const session = newSession();
    const r = await runPhase(
      'connect',
      [trustedNetwork],
      checkContext('connect', { input: {}, session, trusted: ['10.0.0.0/8'] }),
    );
    assert.equal(session.trustedRule, '');
    assert.deepEqual(r.records, []);
  });
});

describe('client reputation', () => {
  const hit = (zone: string, answers: string[], txt = '') =>
    reputation.ListHit.fromPartial({ zone, answers, txt });
  const A = reputation.ListAction;
  const clean = { action: A.LIST_ACTION_NONE, reasonCode: 'dnsbl.clean', vars: { zones: 'zen.example.org' } };
  const answer = (r: Partial<reputation.CheckClientResponse>) =>
    reputation.CheckClientResponse.fromPartial({ verdict: clean, ...r });
  const settledClean = (v: unknown) => {
    assert.equal((v as { kind: string }).kind, 'verdict');
    assert.equal((v as { verdict: reputation.Verdict }).verdict.action, A.LIST_ACTION_NONE);
  };

  /** A reputation backend whose answer waits until release() is called. */
  function gated(result: () => reputation.CheckClientResponse) {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const backends = new FakeBackends({
      checkClient: async () => {
        await gate;
        return result();
      },
    });
    return { backends, release };
  }

  function start(session: Session, backends: FakeBackends, yaml = '') {
    const ctx = checkContext('connect', { input: {}, session, backends, cfg: config(yaml) });
    const recorder = new CollectingRecorder();
    const lists = {
      connect: [clientReputation],
      helo: [],
      auth: [],
      mail: [],
      rcpt: [],
      data: [],
      queue: [],
    };
    const runner = new Runner(lists, ctx.deps, recorder, silentLogger);
    return { run: runner.run('connect', ctx), records: recorder.inputs };
  }

  it('sets session.reputation as soon as the phase runs, and the phase does not wait for the lookup', async () => {
    const { backends, release } = gated(() => answer({}));
    const session = newSession();
    const { run, records } = start(session, backends);
    assert.ok(session.reputation instanceof Promise, 'set synchronously');
    assert.deepEqual(await run, []);
    let settled = false;
    void session.reputation.then(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(settled, false);
    assert.deepEqual(records, []);
    release();
    settledClean(await session.reputation);
    await until(() => records.length === 1);
  });

  it("settles the service's verdict and records dnsbl.listed at connect without refusing", async () => {
    const verdict = reputation.Verdict.fromPartial({
      action: A.LIST_ACTION_REJECT,
      reasonCode: 'dnsbl.listed',
      vars: {
        zone: 'zen.example.org',
        zones: 'zen.example.org',
        answers: '127.0.0.2,127.0.0.4',
        txt: 'see url',
      },
    });
    const { backends, release } = gated(() =>
      answer({
        listed: true,
        score: 2,
        blockHits: [hit('zen.example.org', ['127.0.0.2', '127.0.0.4'], 'see url')],
        verdict,
      }),
    );
    const session = newSession();
    const { records } = start(session, backends);
    release();
    assert.deepEqual(await session.reputation, { kind: 'verdict', verdict });
    await until(() => records.length === 1);
    const d = only(records);
    assert.equal(d.phase, 'connect');
    assert.equal(d.outcome, 'fail');
    assert.equal(d.reasonCode, 'dnsbl.listed');
    assert.equal(d.reply, undefined, 'the listing is delivered at RCPT');
    assert.deepEqual(d.attributes, {
      zone: 'zen.example.org',
      zones: 'zen.example.org',
      answers: '127.0.0.2,127.0.0.4',
      txt: 'see url',
      score: '2',
    });
  });

  it('settles a clean client and records the zones looked up, the ones that failed and the disabled ones', async () => {
    const { backends, release } = gated(() =>
      answer({
        failedZones: ['bl.example.net'],
        disabledZones: ['wild.example.net'],
        verdict: reputation.Verdict.fromPartial({
          ...clean,
          vars: { zones: 'zen.example.org, bl.example.net' },
        }),
      }),
    );
    const session = newSession();
    const { records } = start(session, backends);
    release();
    settledClean(await session.reputation);
    await until(() => records.length === 1);
    const d = only(records);
    assert.equal(d.outcome, 'pass');
    assert.equal(d.reasonCode, 'dnsbl.clean');
    assert.equal(d.detail, '192.0.2.7 was looked up in zen.example.org, bl.example.net and is not listed.');
    assert.equal(d.attributes?.failed_zones, 'bl.example.net');
    assert.equal(d.attributes?.disabled_zones, 'wild.example.net');
  });

  it('records a listing below the threshold and an exempt client as skips', async () => {
    for (const reasonCode of ['dnsbl.below_threshold', 'dnsbl.exempt']) {
      const { backends, release } = gated(() =>
        answer({
          verdict: reputation.Verdict.fromPartial({ action: A.LIST_ACTION_NONE, reasonCode, vars: {} }),
        }),
      );
      const { records } = start(newSession(), backends);
      release();
      await until(() => records.length === 1);
      assert.equal(only(records).outcome, 'skip');
      assert.equal(only(records).reasonCode, reasonCode);
    }
  });

  it('keeps the verified FCrDNS name and the DNSWL result on the session', async () => {
    const { backends, release } = gated(() =>
      answer({
        fcrdnsVerified: true,
        reverseHostname: 'mail.example.org',
        allowHits: [hit('list.dnswl.example', ['127.0.10.0'])],
      }),
    );
    const session = newSession();
    start(session, backends);
    release();
    await session.reputation;
    assert.equal(session.clientHostname, 'mail.example.org');
    assert.equal(session.dnswlListed, true);
  });

  it('ignores a reverse name that is not forward-confirmed', async () => {
    const { backends, release } = gated(() =>
      answer({ fcrdnsVerified: false, reverseHostname: 'forged.example.org' }),
    );
    const session = newSession();
    start(session, backends);
    release();
    await session.reputation;
    assert.equal(session.clientHostname, '');
    assert.equal(session.dnswlListed, false);
  });

  it('does not list the client when the dnsbl check is disabled', async () => {
    const { backends, release } = gated(() =>
      answer({ listed: true, blockHits: [hit('zen.example.org', ['127.0.0.2'])] }),
    );
    const session = newSession();
    const { records } = start(session, backends, 'edge:\n  checks:\n    dnsbl:\n      enabled: false\n');
    release();
    assert.deepEqual(await session.reputation, { kind: 'clean' });
    await until(() => records.length === 1);
    assert.equal(only(records).reasonCode, 'dnsbl.clean');
  });

  it('settles a failed lookup as an error to refuse at RCPT when fail-closed (the default)', async () => {
    const backends = new FakeBackends({
      checkClient: () => {
        throw backendDown('reputation', 'checkClient');
      },
    });
    const session = newSession();
    const { records } = start(session, backends);
    assert.deepEqual(await session.reputation, {
      kind: 'error',
      refuse: true,
      error: 'reputation.checkClient: UNAVAILABLE: down',
    });
    await until(() => records.length === 1);
    const d = only(records);
    assert.equal(d.outcome, 'error');
    assert.equal(d.reasonCode, 'dnsbl.error');
    assert.equal(d.reply, undefined);
    assert.deepEqual(d.attributes, {
      error: 'reputation.checkClient: UNAVAILABLE: down',
      failure_mode: 'fail-closed',
    });
  });

  it('settles a failed lookup as an error not to refuse when fail-open', async () => {
    const backends = new FakeBackends({
      checkClient: () => {
        throw backendDown('reputation', 'checkClient');
      },
    });
    const session = newSession();
    start(session, backends, 'edge:\n  checks:\n    dnsbl:\n      failureMode: fail-open\n');
    const rep = await session.reputation;
    assert.equal(rep?.kind, 'error');
    assert.equal(rep?.kind === 'error' && rep.refuse, false);
  });

  it('asks with the session context', async () => {
    const backends = new FakeBackends({ checkClient: () => answer({}) });
    const session = newSession();
    session.helo = 'client.example.org';
    start(session, backends);
    await session.reputation;
    const [req] = backends.requests('checkClient');
    assert.equal(req?.session?.clientIp, '192.0.2.7');
    assert.equal(req?.session?.sessionId, 's1');
  });

  it('is not run for a trusted client', () => {
    const session = newSession();
    const ctx = checkContext('connect', { input: {}, session });
    assert.equal(clientReputation.enabled?.(ctx), true);
    session.trustedRule = '192.0.2.0/24';
    assert.equal(clientReputation.enabled?.(ctx), false);
  });
});
