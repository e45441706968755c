import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { events } from '@smtpguard/contracts';
import { createLogger } from '@smtpguard/logging';
import { reason as catalogReason, isReasonCode } from '@smtpguard/reasons';
import {
  backendDown,
  CollectingRecorder,
  config,
  FakeBackends,
  newSession,
  rcptContext,
  silentLogger,
  until,
} from '../fakes.test.js';
import type { Session } from '../session.js';
import { type Check, type CheckContext, defineCheck, type Phase } from './check.js';
import { PHASES } from './phases.js';
import { OWN_REPLY, ReplyError } from './reply.js';
import { type PhaseLists, Runner } from './runner.js';

const RECIPIENT = 'bob@remote.example';

function session(): Session {
  const s = newSession();
  s.helo = 'client.example.org';
  s.beginTransaction('alice@example.org', {});
  return s;
}

type Lists = { [P in Phase]?: ReadonlyArray<Check<P>> };

function setup(lists: Lists, logger = silentLogger) {
  const s = session();
  const ctx = rcptContext(RECIPIENT, { session: s });
  const recorder = new CollectingRecorder();
  const full = {
    connect: [],
    helo: [],
    auth: [],
    mail: [],
    rcpt: [],
    data: [],
    queue: [],
    ...lists,
  } as unknown as PhaseLists;
  const runner = new Runner(full, ctx.deps, recorder, logger);
  const runRcpt = () => runner.run('rcpt', ctx, { recipient: RECIPIENT });
  return { session: s, ctx, recorder, runner, runRcpt, records: recorder.inputs };
}

/** A check that counts its runs and returns undefined. */
function counting(name = 'later') {
  let runs = 0;
  const check = defineCheck({
    name,
    phase: 'rcpt',
    reasons: ['rcpt.local'],
    settings: [],
    run() {
      runs += 1;
      return undefined;
    },
  });
  return { check, runs: () => runs };
}

async function refusal(p: Promise<unknown>): Promise<ReplyError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ReplyError) return err;
    throw err;
  }
  assert.fail('expected a ReplyError');
}

const authenticatedRelay = defineCheck({
  name: 'relay',
  phase: 'rcpt',
  reasons: ['relay.granted.authenticated'],
  settings: [],
  run: () => ({
    outcome: 'pass',
    reason: 'relay.granted.authenticated',
    attributes: { mode: 'authorized', unset: undefined },
  }),
});

const deniedRelay = defineCheck({
  name: 'relay',
  phase: 'rcpt',
  reasons: ['relay.denied'],
  settings: [],
  run: () => ({ outcome: 'fail', reason: 'relay.denied', refuse: true }),
});

describe('Runner.run', () => {
  it('records a passing check with its reason, outcome and the session values filled into the detail', async () => {
    const t = setup({ rcpt: [authenticatedRelay] });
    t.session.user = 'alice@example.org';
    const verdicts = await t.runRcpt();
    assert.deepEqual(verdicts, [
      {
        outcome: 'pass',
        reason: 'relay.granted.authenticated',
        attributes: { mode: 'authorized', unset: undefined },
      },
    ]);
    assert.equal(t.records.length, 1);
    const d = t.records[0];
    assert.equal(d?.phase, 'rcpt');
    assert.equal(d?.check, 'relay');
    assert.equal(d?.outcome, 'pass');
    assert.equal(d?.reasonCode, 'relay.granted.authenticated');
    assert.equal(
      d?.detail,
      'alice@example.org (authenticated) may send from 192.0.2.7 to the remote address <bob@remote.example>.',
    );
    assert.equal(d?.reply, undefined);
    assert.equal(d?.recipient, RECIPIENT);
    assert.equal(d?.session.clientIp, '192.0.2.7');
    assert.equal(d?.session.sender, 'alice@example.org');
    assert.equal(d?.session.authenticatedUser, 'alice@example.org');
    assert.deepEqual(d?.attributes, { mode: 'authorized' }, 'attributes without a value are dropped');
    assert.ok(typeof d?.latencyMs === 'number' && d.latencyMs >= 0);
  });

  it('publishes the decision as an event through the recorder', async () => {
    const t = setup({ rcpt: [deniedRelay] });
    await refusal(t.runRcpt());
    assert.equal(t.recorder.published.length, 1);
    const e = t.recorder.published[0];
    assert.equal(e?.service, 'smtp-edge');
    assert.equal(e?.phase, events.Phase.PHASE_RCPT);
    assert.equal(e?.outcome, events.Outcome.OUTCOME_FAIL);
    assert.equal(e?.reasonCode, 'relay.denied');
    assert.equal(e?.reply?.code, 550);
    assert.equal(e?.reply?.enhancedCode, '5.7.1');
    assert.equal(e?.recipient, RECIPIENT);
    assert.equal(e?.session?.sessionId, 's1');
  });

  it('throws the catalog reply of a refusing check and runs no later check of the phase', async () => {
    const later = counting();
    const t = setup({ rcpt: [deniedRelay, later.check] });
    const err = await refusal(t.runRcpt());
    const text =
      'Relaying denied: <bob@remote.example> is not local and you are not authorized to relay (ref s1)';
    assert.deepEqual(err.reply, { code: 550, enhanced: '5.7.1', text });
    assert.equal(err.reason, 'relay.denied');
    assert.equal(err.responseCode, 550);
    assert.equal(err.close, false);
    assert.equal(err.message, `${OWN_REPLY}5.7.1 ${text}`);
    assert.equal(later.runs(), 0);
    assert.equal(t.records.length, 1);
    assert.equal(t.records[0]?.outcome, 'fail');
    assert.deepEqual(t.records[0]?.reply, err.reply);
    assert.equal(
      t.records[0]?.detail,
      '192.0.2.7 (HELO client.example.org) sent from <alice@example.org> to <bob@remote.example>, which is ' +
        'not a local domain. The session was not authenticated and 192.0.2.7 is not in edge.trustedNetworks.',
    );
  });

  it("fills the check's vars into the reply and passes its close flag on", async () => {
    const tooMany = defineCheck({
      name: 'recipients',
      phase: 'rcpt',
      reasons: ['rcpt.too_many'],
      settings: [],
      run: () => ({ outcome: 'defer', reason: 'rcpt.too_many', vars: { max: 5 }, refuse: true, close: true }),
    });
    const t = setup({ rcpt: [tooMany] });
    const err = await refusal(t.runRcpt());
    assert.deepEqual(err.reply, {
      code: 452,
      enhanced: '4.5.3',
      text: 'Too many recipients (at most 5 per message), send the rest in another transaction (ref s1)',
    });
    assert.equal(err.close, true);
    assert.equal(t.records[0]?.outcome, 'defer');
  });

  it('records nothing for a check that returns undefined and goes on with the next one', async () => {
    const first = counting('first');
    const t = setup({ rcpt: [first.check, authenticatedRelay] });
    const verdicts = await t.runRcpt();
    assert.equal(first.runs(), 1);
    assert.deepEqual(
      t.records.map((r) => r.check),
      ['relay'],
    );
    assert.equal(verdicts.length, 1);
  });

  it('skips a check whose enabled() is false: it does not run and records nothing', async () => {
    let seen: CheckContext<'rcpt'> | undefined;
    let runs = 0;
    const disabled = defineCheck({
      name: 'disabled',
      phase: 'rcpt',
      reasons: ['relay.denied'],
      settings: [],
      enabled: (ctx) => {
        seen = ctx;
        return false;
      },
      run: () => {
        runs += 1;
        return { outcome: 'fail', reason: 'relay.denied', refuse: true };
      },
    });
    const t = setup({ rcpt: [disabled, authenticatedRelay] });
    await t.runRcpt();
    assert.equal(runs, 0);
    assert.equal(seen, t.ctx);
    assert.deepEqual(
      t.records.map((r) => r.check),
      ['relay'],
    );
  });

  it('runs only the checks of the phase asked for', async () => {
    const mailCheck = defineCheck({
      name: 'mail-only',
      phase: 'mail',
      reasons: ['mail.empty_sender'],
      settings: [],
      run: () => ({ outcome: 'fail', reason: 'mail.empty_sender', refuse: true }),
    });
    const t = setup({ mail: [mailCheck], rcpt: [authenticatedRelay] });
    await t.runRcpt();
    assert.deepEqual(
      t.records.map((r) => r.reasonCode),
      ['relay.granted.authenticated'],
    );
  });

  describe('a backend that fails (BackendError)', () => {
    const greylistDown = (mode: 'fail-open' | 'fail-closed', seen: unknown[] = []) =>
      defineCheck({
        name: 'greylist',
        phase: 'rcpt',
        reasons: ['greylist.passed', 'greylist.unavailable'],
        settings: [],
        onBackendError: {
          reason: 'greylist.unavailable',
          mode: (cfg) => {
            seen.push(cfg);
            return mode;
          },
        },
        run: () => {
          throw backendDown('greylist', 'check');
        },
      });

    it('fail-closed: refuses with the reason reply, records outcome error and the failure mode', async () => {
      const seen: unknown[] = [];
      const later = counting();
      const t = setup({ rcpt: [greylistDown('fail-closed', seen), later.check] });
      const err = await refusal(t.runRcpt());
      assert.deepEqual(err.reply, {
        code: 451,
        enhanced: '4.3.0',
        text: 'Temporary server error, please try again later (ref s1)',
      });
      assert.equal(err.reason, 'greylist.unavailable');
      assert.equal(seen[0], t.ctx.cfg, 'the mode is read from the context configuration');
      assert.equal(later.runs(), 0);
      const d = t.records[0];
      assert.equal(t.records.length, 1);
      assert.equal(d?.outcome, 'error');
      assert.equal(d?.reasonCode, 'greylist.unavailable');
      assert.deepEqual(d?.attributes, {
        error: 'greylist.check: UNAVAILABLE: down',
        failure_mode: 'fail-closed',
      });
      assert.equal(
        d?.detail,
        'Asking the greylist service about <bob@remote.example> failed: greylist.check: UNAVAILABLE: down.',
      );
    });

    it('fail-open: records the error without a reply and the phase goes on', async () => {
      const later = counting();
      const t = setup({ rcpt: [greylistDown('fail-open'), later.check] });
      const verdicts = await t.runRcpt();
      assert.equal(verdicts.length, 1);
      assert.equal(verdicts[0]?.refuse, false);
      assert.equal(later.runs(), 1);
      const d = t.records[0];
      assert.equal(d?.outcome, 'error');
      assert.equal(d?.reasonCode, 'greylist.unavailable');
      assert.equal(d?.reply, undefined);
      assert.equal(d?.attributes?.failure_mode, 'fail-open');
    });

    it('propagates from a check without onBackendError, recording nothing', async () => {
      const thrown = backendDown('auth', 'resolveRecipient');
      const plain = defineCheck({
        name: 'plain',
        phase: 'rcpt',
        reasons: ['rcpt.local'],
        settings: [],
        run: () => {
          throw thrown;
        },
      });
      const t = setup({ rcpt: [plain] });
      await assert.rejects(t.runRcpt(), (err) => err === thrown);
      assert.equal(t.records.length, 0);
    });

    it('does not apply to other errors of a check that has onBackendError', async () => {
      const broken = defineCheck({
        name: 'broken',
        phase: 'rcpt',
        reasons: ['greylist.unavailable'],
        settings: [],
        onBackendError: { reason: 'greylist.unavailable', mode: () => 'fail-closed' },
        run: () => {
          throw new TypeError('bug');
        },
      });
      const t = setup({ rcpt: [broken] });
      await assert.rejects(t.runRcpt(), TypeError);
      assert.equal(t.records.length, 0);
    });
  });

  it('throws when a check returns a reason it does not declare, recording nothing', async () => {
    const liar = defineCheck({
      name: 'liar',
      phase: 'rcpt',
      reasons: ['rcpt.local'],
      settings: [],
      run: () => ({ outcome: 'fail', reason: 'relay.denied', refuse: true }) as never,
    });
    const t = setup({ rcpt: [liar] });
    await assert.rejects(t.runRcpt(), (err: Error) => {
      assert.ok(!(err instanceof ReplyError));
      assert.match(err.message, /check liar returned reason relay\.denied, which it does not declare/);
      return true;
    });
    assert.equal(t.records.length, 0);
  });

  describe('replyOverride', () => {
    const hopRefusal = (override: { code?: number; enhanced?: string }) =>
      defineCheck({
        name: 'next-hop',
        phase: 'rcpt',
        reasons: ['rcpt.nexthop_refused'],
        settings: [],
        run: () => ({
          outcome: 'fail',
          reason: 'rcpt.nexthop_refused',
          vars: { hop_text: 'No such user here' },
          refuse: true,
          replyOverride: override,
        }),
      });

    it('is used when code and enhanced code are of the reply class', async () => {
      const t = setup({ rcpt: [hopRefusal({ code: 553, enhanced: '5.1.3' })] });
      const err = await refusal(t.runRcpt());
      assert.deepEqual(err.reply, { code: 553, enhanced: '5.1.3', text: 'No such user here (ref s1)' });
      assert.equal(err.responseCode, 553);
      assert.deepEqual(t.records[0]?.reply, err.reply);
    });

    it('is ignored outside the class: a 5xx refusal stays 5xx', async () => {
      const t = setup({ rcpt: [hopRefusal({ code: 451, enhanced: '4.4.1' })] });
      const err = await refusal(t.runRcpt());
      assert.deepEqual(err.reply, { code: 550, enhanced: '5.0.0', text: 'No such user here (ref s1)' });
    });

    it('takes the code and the enhanced code separately', async () => {
      const t = setup({ rcpt: [hopRefusal({ code: 552, enhanced: '4.2.2' })] });
      const err = await refusal(t.runRcpt());
      assert.deepEqual(err.reply, { code: 552, enhanced: '5.0.0', text: 'No such user here (ref s1)' });
    });
  });

  describe('background checks', () => {
    it('do not delay run(); their decision is recorded once they finish', async () => {
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let finished = false;
      const slow = defineCheck({
        name: 'slow',
        phase: 'connect',
        reasons: ['dnsbl.clean'],
        settings: [],
        background: true,
        async run() {
          await gate;
          finished = true;
          return { outcome: 'pass', reason: 'dnsbl.clean', vars: { zones: 'zen.example.org' } };
        },
      });
      const trusted = defineCheck({
        name: 'trusted',
        phase: 'connect',
        reasons: ['connect.trusted'],
        settings: [],
        run: () => ({ outcome: 'pass', reason: 'connect.trusted', vars: { rule: '192.0.2.0/24' } }),
      });
      const t = setup({ connect: [slow, trusted] });
      const ctx = t.runner.context('connect', config(), t.session, {});
      const verdicts = await t.runner.run('connect', ctx);
      assert.equal(finished, false);
      assert.deepEqual(
        verdicts.map((v) => v.reason),
        ['connect.trusted'],
        'the background verdict is not among the ones run() returns',
      );
      assert.deepEqual(
        t.records.map((r) => r.check),
        ['trusted'],
      );
      release();
      await until(() => t.records.length === 2);
      assert.equal(t.records[1]?.check, 'slow');
      assert.equal(t.records[1]?.detail, '192.0.2.7 was looked up in zen.example.org and is not listed.');
    });

    it('that fail are logged, not thrown into the phase', async () => {
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(chunk.toString());
          done();
        },
      });
      const logger = createLogger('test', { level: 'error', destination });
      const failing = defineCheck({
        name: 'failing',
        phase: 'connect',
        reasons: ['dnsbl.clean'],
        settings: [],
        background: true,
        async run() {
          throw new Error('lookup exploded');
        },
      });
      const t = setup({ connect: [failing] }, logger);
      const verdicts = await t.runner.run('connect', t.runner.context('connect', config(), t.session, {}));
      assert.deepEqual(verdicts, []);
      await until(() => lines.length > 0);
      const line = JSON.parse(lines[0] ?? '{}') as { check?: string; msg?: string; err?: string };
      assert.equal(line.check, 'failing');
      assert.equal(line.msg, 'background check failed');
      assert.match(line.err ?? '', /lookup exploded/);
      assert.equal(t.records.length, 0);
    });
  });
});

describe('Runner.context', () => {
  it("gives the checks the session's transaction, the input and the recipient", () => {
    const t = setup({});
    const rcpt = t.ctx.rcpt;
    const ctx = t.runner.context('rcpt', t.ctx.cfg, t.session, { address: RECIPIENT, params: {} }, rcpt);
    assert.equal(ctx.tx, t.session.tx);
    assert.equal(ctx.rcpt, rcpt);
    assert.equal(ctx.session, t.session);
    assert.equal(ctx.deps, t.ctx.deps);
    assert.deepEqual(ctx.input, { address: RECIPIENT, params: {} });
  });
});

describe('Runner.decide and Runner.refuse', () => {
  it('refuse() records a 5xx reason as outcome fail and returns its reply', () => {
    const t = setup({});
    const reply = t.runner.refuse(t.session, 'protocol', 'smtp', 'protocol.unknown_command', {
      command: 'FOO',
    });
    assert.deepEqual(reply, {
      code: 500,
      enhanced: '5.5.2',
      text: 'Syntax error, command unrecognized (ref s1)',
    });
    const d = t.records[0];
    assert.equal(t.records.length, 1);
    assert.equal(d?.phase, 'protocol');
    assert.equal(d?.check, 'smtp');
    assert.equal(d?.outcome, 'fail');
    assert.equal(d?.reasonCode, 'protocol.unknown_command');
    assert.equal(d?.detail, '192.0.2.7 sent "FOO", which is not an SMTP command.');
    assert.deepEqual(d?.reply, reply);
  });

  it('refuse() records a 4xx reason as outcome defer', () => {
    const t = setup({});
    const reply = t.runner.refuse(t.session, 'protocol', 'error-limit', 'protocol.too_many_errors', {
      errors: 20,
    });
    assert.equal(reply.code, 421);
    assert.equal(reply.enhanced, '4.7.0');
    assert.equal(t.records[0]?.outcome, 'defer');
    assert.equal(t.records[0]?.check, 'error-limit');
  });

  it('refuse() carries the scope: recipient and message id', () => {
    const t = setup({});
    t.runner.refuse(
      t.session,
      'rcpt',
      'protocol',
      'rcpt.nexthop_unavailable',
      { error: 'x' },
      {
        recipient: RECIPIENT,
        messageId: 'M1',
      },
    );
    assert.equal(t.records[0]?.recipient, RECIPIENT);
    assert.equal(t.records[0]?.messageId, 'M1');
    assert.equal(
      t.records[0]?.reply?.text,
      'Recipient <bob@remote.example> cannot be accepted now: the next hop is unavailable (ref s1)',
    );
  });

  it('decide() fills the message id of the scope into the detail and returns no reply without refuse', () => {
    const t = setup({});
    const reply = t.runner.decide(
      t.session,
      'queue',
      'delivery',
      {
        outcome: 'error',
        reason: 'queue.nexthop_failed',
        vars: { next_hop: 'smtp://10.0.0.5:25', error: 'timeout' },
      },
      { messageId: 'ABC123' },
      12,
    );
    assert.equal(reply, undefined);
    const d = t.records[0];
    assert.equal(d?.detail, 'Handing message ABC123 to smtp://10.0.0.5:25 failed: timeout.');
    assert.equal(d?.messageId, 'ABC123');
    assert.equal(d?.latencyMs, 12);
    assert.equal(d?.reply, undefined);
  });

  it("lets a verdict's vars override the session values", () => {
    const t = setup({});
    t.session.user = 'someone-else@example.org';
    t.runner.decide(t.session, 'mail', 'account-recheck', {
      outcome: 'fail',
      reason: 'account.revoked',
      vars: { user: 'alice@example.org', state: 'disabled' },
    });
    assert.match(t.records[0]?.detail ?? '', /^alice@example\.org authenticated earlier in session s1, /);
  });
});

describe('PHASES', () => {
  const phases = Object.keys(PHASES) as Phase[];

  it('lists every check under its own phase, with a unique name per phase', () => {
    for (const phase of phases) {
      const names = PHASES[phase].map((c) => c.name);
      assert.equal(new Set(names).size, names.length, `${phase}: duplicate check names`);
      for (const check of PHASES[phase]) assert.equal(check.phase, phase, `${check.name} is in ${phase}`);
    }
  });

  it('declares only reasons of the catalog; backend failure reasons are declared and have a reply', () => {
    for (const phase of phases) {
      for (const check of PHASES[phase]) {
        for (const r of check.reasons)
          assert.ok(isReasonCode(r), `${check.name}: ${r} is not in the catalog`);
        const onError = check.onBackendError;
        if (onError) {
          assert.ok(check.reasons.includes(onError.reason), `${check.name}: ${onError.reason} not declared`);
          assert.ok(catalogReason(onError.reason).reply, `${onError.reason} has no reply`);
        }
      }
    }
  });

  it('runs only connect checks in the background', () => {
    for (const phase of phases) {
      for (const check of PHASES[phase]) {
        if (check.background) assert.equal(phase, 'connect', `${check.name} is a background check`);
      }
    }
  });
});

describe('FakeBackends (test support)', () => {
  it("refuses a call under another backend's name, so the checks' backend names are checked too", async () => {
    const backends = new FakeBackends({ resolveRecipient: () => ({}) as never });
    await assert.rejects(
      backends.call('reputation', backends.auth.resolveRecipient, {}),
      /resolveRecipient called on backend reputation/,
    );
    await assert.rejects(backends.call('auth', backends.auth.checkAccount, {}), /unexpected backend call/);
    assert.deepEqual(await backends.call('auth', backends.auth.resolveRecipient, { address: 'a' }), {});
    assert.deepEqual(backends.requests('resolveRecipient'), [{ address: 'a' }]);
  });
});
