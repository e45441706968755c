import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auth, greylist as contract, reputation } from '@smtpguard/contracts';
import { DeliveryError, type HopReply } from '../../delivery/next-hop.js';
import {
  backendDown,
  config,
  FakeBackends,
  FakeHopTransaction,
  FakeNextHop,
  newSession,
  only,
  rcptContext,
  runPhase,
} from '../../fakes.test.js';
import type { ClientReputation, Session } from '../../session.js';
import { dnsbl } from './dnsbl.js';
import { greylist } from './greylist.js';
import { hopRecipientLimit } from './hop-recipient-limit.js';
import { nextHopRecipient } from './next-hop-recipient.js';
import { rcptParams } from './rcpt-params.js';
import { recipient } from './recipient.js';
import { recipientCount } from './recipient-count.js';
import { relay } from './relay.js';

const S = auth.RecipientStatus;

describe('recipient', () => {
  const resolving = (r: Partial<auth.ResolveRecipientResponse>) =>
    new FakeBackends({ resolveRecipient: () => auth.ResolveRecipientResponse.fromPartial(r) });

  it('asks the directory about the address with the session context', async () => {
    const backends = resolving({ status: S.RECIPIENT_STATUS_MAILBOX, domain: 'example.test' });
    const ctx = rcptContext('bob@example.test', { backends });
    await runPhase('rcpt', [recipient], ctx);
    const [req] = backends.requests('resolveRecipient');
    assert.equal(req?.address, 'bob@example.test');
    assert.equal(req?.session?.clientIp, '192.0.2.7');
    assert.equal(req?.session?.sender, 'alice@example.org');
  });

  for (const [status, kind] of [
    [S.RECIPIENT_STATUS_MAILBOX, 'mailbox'],
    [S.RECIPIENT_STATUS_ALIAS, 'alias'],
    [S.RECIPIENT_STATUS_LIST, 'list'],
  ] as const) {
    it(`passes a local ${kind} and marks the recipient local`, async () => {
      const backends = resolving({ status, domain: 'example.test', deliveryAddresses: ['bob@example.test'] });
      const ctx = rcptContext('bob@example.test', { backends });
      const r = await runPhase('rcpt', [recipient], ctx, { recipient: 'bob@example.test' });
      assert.equal(r.refusal, undefined);
      assert.equal(ctx.rcpt.local, true);
      const d = only(r.records);
      assert.equal(d.outcome, 'pass');
      assert.equal(d.reasonCode, 'rcpt.local');
      assert.equal(d.detail, `<bob@example.test> is a ${kind} on the local domain example.test.`);
    });
  }

  it('passes a catch-all delivery and marks the recipient local', async () => {
    const backends = resolving({
      status: S.RECIPIENT_STATUS_CATCH_ALL,
      domain: 'example.test',
      deliveryAddresses: ['catch@example.test'],
    });
    const ctx = rcptContext('nobody@example.test', { backends });
    const r = await runPhase('rcpt', [recipient], ctx, { recipient: 'nobody@example.test' });
    assert.equal(r.refusal, undefined);
    assert.equal(ctx.rcpt.local, true);
    const d = only(r.records);
    assert.equal(d.reasonCode, 'rcpt.catch_all');
    assert.equal(
      d.detail,
      '<nobody@example.test> does not exist; example.test delivers unknown addresses to catch@example.test.',
    );
  });

  it('records a recipient outside the local domains as skip, not local, without refusing', async () => {
    const ctx = rcptContext('bob@remote.example', {
      backends: resolving({ status: S.RECIPIENT_STATUS_NOT_LOCAL }),
    });
    const r = await runPhase('rcpt', [recipient], ctx);
    assert.equal(r.refusal, undefined);
    assert.equal(ctx.rcpt.local, false);
    assert.equal(only(r.records).outcome, 'skip');
    assert.equal(only(r.records).reasonCode, 'rcpt.not_local');
  });

  it('refuses an unknown user 550 5.1.1', async () => {
    const backends = resolving({ status: S.RECIPIENT_STATUS_UNKNOWN_USER, reasonCode: 'rcpt.unknown_user' });
    const ctx = rcptContext('nobody@example.test', { backends });
    const r = await runPhase('rcpt', [recipient], ctx, { recipient: 'nobody@example.test' });
    assert.deepEqual(r.refusal?.reply, {
      code: 550,
      enhanced: '5.1.1',
      text: 'Unknown user <nobody@example.test>: no such mailbox here (ref s1)',
    });
    assert.equal(ctx.rcpt.local, false);
    assert.equal(only(r.records).outcome, 'fail');
  });

  for (const [status, reasonCode, code, enhanced] of [
    [S.RECIPIENT_STATUS_MAILBOX_DISABLED, 'rcpt.mailbox_disabled', 550, '5.2.1'],
    [S.RECIPIENT_STATUS_DOMAIN_DISABLED, 'rcpt.domain_disabled', 550, '5.2.1'],
    [S.RECIPIENT_STATUS_ROUTING_LOOP, 'rcpt.routing_loop', 550, '5.4.6'],
  ] as const) {
    it(`refuses ${reasonCode} with the directory's reason (${code} ${enhanced})`, async () => {
      const ctx = rcptContext('bob@example.test', { backends: resolving({ status, reasonCode }) });
      const r = await runPhase('rcpt', [recipient], ctx, { recipient: 'bob@example.test' });
      assert.equal(r.refusal?.reason, reasonCode);
      assert.equal(r.refusal?.reply.code, code);
      assert.equal(r.refusal?.reply.enhanced, enhanced);
    });
  }

  it('refuses as unknown user when the directory gives a reason that is not a refusal', async () => {
    for (const reasonCode of ['rcpt.local', 'no.such.code', '']) {
      const backends = resolving({ status: S.RECIPIENT_STATUS_ALIAS_DISABLED, reasonCode });
      const r = await runPhase('rcpt', [recipient], rcptContext('bob@example.test', { backends }));
      assert.equal(r.refusal?.reason, 'rcpt.unknown_user', reasonCode);
    }
  });

  describe('when the directory cannot be asked', () => {
    const down = () =>
      new FakeBackends({
        resolveRecipient: () => {
          throw backendDown('auth', 'resolveRecipient');
        },
      });

    it('fail-closed (the default) refuses 451 4.3.0 and records outcome error', async () => {
      const session = newSession();
      session.user = 'alice@example.org';
      const ctx = rcptContext('bob@example.test', { backends: down(), session });
      const r = await runPhase('rcpt', [recipient], ctx, { recipient: 'bob@example.test' });
      assert.deepEqual(r.refusal?.reply, {
        code: 451,
        enhanced: '4.3.0',
        text: 'Recipient <bob@example.test> cannot be verified now, please try again later (ref s1)',
      });
      const d = only(r.records);
      assert.equal(d.outcome, 'error');
      assert.equal(d.reasonCode, 'rcpt.lookup_unavailable');
      assert.deepEqual(d.attributes, {
        error: 'auth.resolveRecipient: UNAVAILABLE: down',
        failure_mode: 'fail-closed',
      });
    });

    const failOpen = config('edge:\n  checks:\n    recipient:\n      failureMode: fail-open\n');

    for (const [who, authorize] of [
      ['an authenticated', (s: Session) => Object.assign(s, { user: 'alice@example.org' })],
      ['a trusted', (s: Session) => Object.assign(s, { trustedRule: '192.0.2.0/24' })],
    ] as const) {
      it(`fail-open accepts the recipient as local for ${who} session, recording the error`, async () => {
        const session = newSession();
        authorize(session);
        const ctx = rcptContext('bob@example.test', { backends: down(), session, cfg: failOpen });
        const r = await runPhase('rcpt', [recipient, relay], ctx);
        assert.equal(r.refusal, undefined);
        assert.equal(ctx.rcpt.local, true);
        const d = only(r.records);
        assert.equal(d.outcome, 'error');
        assert.equal(d.reasonCode, 'rcpt.lookup_unavailable');
        assert.equal(d.attributes?.failure_mode, 'fail-open');
      });
    }

    it('fail-open still refuses 451 for a session that is not authorized (no open relay)', async () => {
      const ctx = rcptContext('bob@example.test', { backends: down(), cfg: failOpen });
      const r = await runPhase('rcpt', [recipient], ctx);
      assert.equal(r.refusal?.reply.code, 451);
      assert.equal(r.refusal?.reason, 'rcpt.lookup_unavailable');
      assert.equal(ctx.rcpt.local, false);
    });

    it('lets other errors propagate', async () => {
      const backends = new FakeBackends({
        resolveRecipient: () => {
          throw new RangeError('bug');
        },
      });
      await assert.rejects(
        runPhase('rcpt', [recipient], rcptContext('bob@example.test', { backends })),
        RangeError,
      );
    });
  });
});

describe('relay', () => {
  const modes = (mode: string) => config(`edge:\n  relay:\n    mode: ${mode}\n`);

  it('grants anyone in open mode', async () => {
    const r = await runPhase('rcpt', [relay], rcptContext('bob@remote.example', { cfg: modes('open') }));
    assert.equal(r.refusal, undefined);
    assert.equal(only(r.records).reasonCode, 'relay.granted.open');
    assert.equal(only(r.records).outcome, 'pass');
  });

  it('refuses everyone in closed mode, authenticated sessions too', async () => {
    const session = newSession();
    session.user = 'alice@example.org';
    const ctx = rcptContext('bob@remote.example', { cfg: modes('closed'), session });
    const r = await runPhase('rcpt', [relay], ctx, { recipient: 'bob@remote.example' });
    assert.deepEqual(r.refusal?.reply, {
      code: 550,
      enhanced: '5.7.1',
      text: 'Relaying denied: this server does not relay mail to <bob@remote.example> (ref s1)',
    });
    assert.equal(r.refusal?.reason, 'relay.closed');
  });

  it('grants an authenticated session in authorized mode', async () => {
    const session = newSession();
    session.user = 'alice@example.org';
    const r = await runPhase('rcpt', [relay], rcptContext('bob@remote.example', { session }));
    assert.equal(r.refusal, undefined);
    assert.equal(only(r.records).reasonCode, 'relay.granted.authenticated');
  });

  it('grants a trusted client in authorized mode and names the rule', async () => {
    const session = newSession();
    session.trustedRule = '192.0.2.0/24';
    const r = await runPhase('rcpt', [relay], rcptContext('bob@remote.example', { session }), {
      recipient: 'bob@remote.example',
    });
    assert.equal(r.refusal, undefined);
    assert.equal(only(r.records).reasonCode, 'relay.granted.trusted_ip');
    assert.equal(
      only(r.records).detail,
      '192.0.2.7 matched 192.0.2.0/24 in edge.trustedNetworks; relaying to <bob@remote.example>.',
    );
  });

  it('denies anyone else 550 5.7.1 in authorized mode (the default)', async () => {
    const r = await runPhase('rcpt', [relay], rcptContext('bob@remote.example'), {
      recipient: 'bob@remote.example',
    });
    assert.equal(r.refusal?.reason, 'relay.denied');
    assert.equal(r.refusal?.reply.code, 550);
    assert.equal(r.refusal?.reply.enhanced, '5.7.1');
  });

  it('is not run for a local recipient', () => {
    const ctx = rcptContext('bob@example.test');
    assert.equal(relay.enabled?.(ctx), true);
    ctx.rcpt.local = true;
    assert.equal(relay.enabled?.(ctx), false);
  });

  it('does not run after the directory found the recipient local', async () => {
    const backends = new FakeBackends({
      resolveRecipient: () =>
        auth.ResolveRecipientResponse.fromPartial({ status: S.RECIPIENT_STATUS_MAILBOX }),
    });
    const r = await runPhase('rcpt', [recipient, relay], rcptContext('bob@example.test', { backends }));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(
      r.records.map((d) => d.check),
      ['recipient'],
    );
  });

  it('runs after the directory found the recipient not local', async () => {
    const backends = new FakeBackends({
      resolveRecipient: () =>
        auth.ResolveRecipientResponse.fromPartial({ status: S.RECIPIENT_STATUS_NOT_LOCAL }),
    });
    const r = await runPhase('rcpt', [recipient, relay], rcptContext('bob@remote.example', { backends }));
    assert.equal(r.refusal?.reason, 'relay.denied');
  });
});

describe('dnsbl', () => {
  const withReputation = (
    rep: ClientReputation | Promise<ClientReputation>,
    address = 'bob@example.test',
  ) => {
    const session = newSession();
    session.reputation = Promise.resolve(rep);
    return rcptContext(address, { session });
  };
  const vars = {
    zone: 'zen.example.org',
    zones: 'zen.example.org',
    answers: '127.0.0.2',
    score: '1',
    threshold: '1',
  };
  const decided = (
    action: reputation.ListAction,
    reasonCode: string,
    extra: Partial<reputation.Verdict> = {},
  ): ClientReputation => ({
    kind: 'verdict',
    verdict: reputation.Verdict.fromPartial({ action, reasonCode, vars, ...extra }),
  });
  const A = reputation.ListAction;
  const listed = decided(A.LIST_ACTION_REJECT, 'dnsbl.listed');

  it('refuses the recipients of a listed client 554 5.7.1 as the service decided', async () => {
    const r = await runPhase('rcpt', [dnsbl], withReputation(listed), { recipient: 'bob@example.test' });
    assert.deepEqual(r.refusal?.reply, {
      code: 554,
      enhanced: '5.7.1',
      text: 'The IP address of the sender (192.0.2.7) is listed on zen.example.org and was refused (ref s1)',
    });
    const d = only(r.records);
    assert.equal(d.outcome, 'fail');
    assert.equal(d.reasonCode, 'dnsbl.listed');
    assert.equal(d.attributes?.zone, 'zen.example.org');
    assert.match(
      d.detail ?? '',
      /^Session s1 from 192\.0\.2\.7 is listed on zen\.example\.org \(answer 127\.0\.0\.2 on zen\.example\.org; score 1, threshold 1\)/,
    );
  });

  it("defers with 451 4.7.1 for a deferring list, and uses a list's own code and text", async () => {
    const deferred = await runPhase(
      'rcpt',
      [dnsbl],
      withReputation(decided(A.LIST_ACTION_DEFER, 'dnsbl.deferred')),
    );
    assert.equal(deferred.refusal?.reply.code, 451);
    assert.equal(deferred.refusal?.reply.enhanced, '4.7.1');
    assert.equal(only(deferred.records).outcome, 'defer');
    const custom = decided(A.LIST_ACTION_REJECT, 'dnsbl.listed', {
      replyCode: 550,
      replyText: 'Go away, {client_ip} ({zone})',
    });
    const r = await runPhase('rcpt', [dnsbl], withReputation(custom));
    assert.deepEqual(r.refusal?.reply, {
      code: 550,
      enhanced: '5.7.1',
      text: 'Go away, 192.0.2.7 (zen.example.org) (ref s1)',
    });
  });

  it('tags a transaction once, however many recipients, without refusing', async () => {
    const tag = decided(A.LIST_ACTION_TAG, 'dnsbl.tagged', { headers: ['X-Smtpguard-Tag: dnsbl; zen'] });
    const ctx = withReputation(tag);
    const first = await runPhase('rcpt', [dnsbl], ctx);
    assert.equal(first.refusal, undefined);
    assert.equal(only(first.records).reasonCode, 'dnsbl.tagged');
    assert.deepEqual(ctx.tx.headers, ['X-Smtpguard-Tag: dnsbl; zen']);
    const second = await runPhase('rcpt', [dnsbl], ctx);
    assert.deepEqual(second.records, []);
    assert.deepEqual(ctx.tx.headers, ['X-Smtpguard-Tag: dnsbl; zen']);
  });

  it('does nothing for a listing below the threshold or an exempt client', async () => {
    for (const reason of ['dnsbl.below_threshold', 'dnsbl.exempt', 'dnsbl.clean']) {
      const r = await runPhase('rcpt', [dnsbl], withReputation(decided(A.LIST_ACTION_NONE, reason)));
      assert.equal(r.refusal, undefined);
      assert.deepEqual(r.records, []);
    }
  });

  for (const address of [
    'postmaster@example.test',
    'Abuse@example.test',
    'postmaster',
    'POSTMASTER@x.example',
  ]) {
    it(`exempts ${address} from the listing`, async () => {
      const r = await runPhase('rcpt', [dnsbl], withReputation(listed, address), { recipient: address });
      assert.equal(r.refusal, undefined);
      const d = only(r.records);
      assert.equal(d.outcome, 'skip');
      assert.equal(d.reasonCode, 'dnsbl.exempt_recipient');
    });
  }

  it('does not exempt other addresses that merely contain postmaster', async () => {
    const r = await runPhase('rcpt', [dnsbl], withReputation(listed, 'postmaster-team@example.test'));
    assert.equal(r.refusal?.reason, 'dnsbl.listed');
  });

  it('refuses 451 4.4.3 when the lookup failed and the failure mode said refuse', async () => {
    const r = await runPhase(
      'rcpt',
      [dnsbl],
      withReputation({ kind: 'error', refuse: true, error: 'reputation.checkClient: UNAVAILABLE: down' }),
    );
    assert.deepEqual(r.refusal?.reply, {
      code: 451,
      enhanced: '4.4.3',
      text: 'Sender reputation could not be checked, please try again later (ref s1)',
    });
    assert.equal(only(r.records).outcome, 'error');
    assert.equal(
      only(r.records).detail,
      'Looking up 192.0.2.7 failed: reputation.checkClient: UNAVAILABLE: down.',
    );
  });

  it('records nothing when the lookup failed and the failure mode said accept', async () => {
    const r = await runPhase('rcpt', [dnsbl], withReputation({ kind: 'error', refuse: false, error: 'x' }));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });

  it('records nothing for a clean client', async () => {
    const r = await runPhase('rcpt', [dnsbl], withReputation({ kind: 'clean' }));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });

  it('waits for a lookup that is still under way', async () => {
    let settle: (r: ClientReputation) => void = () => undefined;
    const pending = new Promise<ClientReputation>((resolve) => {
      settle = resolve;
    });
    const ctx = withReputation(pending);
    let done = false;
    const run = runPhase('rcpt', [dnsbl], ctx).then((r) => {
      done = true;
      return r;
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(done, false);
    settle(listed);
    assert.equal((await run).refusal?.reason, 'dnsbl.listed');
  });

  it('is not run for an authenticated session or without a lookup', () => {
    const ctx = withReputation(listed);
    assert.equal(dnsbl.enabled?.(ctx), true);
    ctx.session.user = 'alice@example.org';
    assert.equal(dnsbl.enabled?.(ctx), false);
    assert.equal(dnsbl.enabled?.(rcptContext('bob@example.test')), false);
  });
});

describe('greylist', () => {
  const answering = (r: Partial<contract.CheckResponse>) =>
    new FakeBackends({ check: () => contract.CheckResponse.fromPartial(r) });

  it('defers a new triplet 451 4.7.1 with retry_after in the reply', async () => {
    const backends = answering({
      action: contract.Action.ACTION_DEFER,
      reasonCode: 'greylist.new',
      retryAfterSeconds: 300,
      tripletKey: '192.0.2.0/24|alice@example.org|bob@example.test',
    });
    const ctx = rcptContext('bob@example.test', { backends });
    const r = await runPhase('rcpt', [greylist], ctx, { recipient: 'bob@example.test' });
    assert.deepEqual(r.refusal?.reply, {
      code: 451,
      enhanced: '4.7.1',
      text: 'Greylisted: this server employs greylisting, please retry in 300 seconds (ref s1)',
    });
    const d = only(r.records);
    assert.equal(d.outcome, 'defer');
    assert.deepEqual(d.attributes, {
      triplet: '192.0.2.0/24|alice@example.org|bob@example.test',
      retry_after: '300',
    });
    assert.equal(ctx.tx.greylistDelay, 0);
  });

  it('defers an early retry with its own text', async () => {
    const backends = answering({
      action: contract.Action.ACTION_DEFER,
      reasonCode: 'greylist.early_retry',
      retryAfterSeconds: 120,
    });
    const r = await runPhase('rcpt', [greylist], rcptContext('bob@example.test', { backends }));
    assert.equal(r.refusal?.reply.text, 'Greylisted: please retry in 120 seconds (ref s1)');
    assert.equal(r.refusal?.reason, 'greylist.early_retry');
  });

  it('follows the action when the reason does not fit it: a defer named as a pass is still a 451', async () => {
    const backends = answering({
      action: contract.Action.ACTION_DEFER,
      reasonCode: 'greylist.passed',
      retryAfterSeconds: 60,
    });
    const r = await runPhase('rcpt', [greylist], rcptContext('bob@example.test', { backends }));
    assert.equal(r.refusal?.reason, 'greylist.new');
    assert.equal(r.refusal?.reply.code, 451);
  });

  it('asks with the recipient, the SPF pass domain and the DNSWL flag', async () => {
    const backends = answering({ action: contract.Action.ACTION_PASS, reasonCode: 'greylist.passed' });
    const session = newSession();
    session.dnswlListed = true;
    const ctx = rcptContext('bob@example.test', { backends, session });
    ctx.tx.spfPassDomain = 'example.org';
    await runPhase('rcpt', [greylist], ctx);
    const [req] = backends.requests('check');
    assert.equal(req?.recipient, 'bob@example.test');
    assert.equal(req?.spfPassDomain, 'example.org');
    assert.equal(req?.dnswlListed, true);
    assert.equal(req?.session?.clientIp, '192.0.2.7');
  });

  it('waits for the connect lookup before asking (its DNSWL result counts)', async () => {
    const backends = answering({ action: contract.Action.ACTION_PASS, reasonCode: 'greylist.passed' });
    const session = newSession();
    let settle: (r: ClientReputation) => void = () => undefined;
    session.reputation = new Promise((resolve) => {
      settle = resolve;
    });
    const run = runPhase('rcpt', [greylist], rcptContext('bob@example.test', { backends, session }));
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(backends.calls.length, 0);
    session.dnswlListed = true;
    settle({ kind: 'clean' });
    await run;
    assert.equal(backends.requests('check')[0]?.dnswlListed, true);
  });

  it('passes a triplet that waited and keeps the longest delay for the X-Greylist header', async () => {
    const backends = answering({
      action: contract.Action.ACTION_PASS,
      reasonCode: 'greylist.passed',
      delayedSeconds: 420,
      tripletKey: 'k',
    });
    const ctx = rcptContext('bob@example.test', { backends });
    const r = await runPhase('rcpt', [greylist], ctx);
    assert.equal(r.refusal, undefined);
    assert.equal(ctx.tx.greylistDelay, 420);
    assert.equal(only(r.records).outcome, 'pass');
    assert.equal(only(r.records).detail, 'Triplet k passed after being delayed 420 seconds.');

    ctx.tx.greylistDelay = 900;
    await runPhase('rcpt', [greylist], ctx);
    assert.equal(ctx.tx.greylistDelay, 900, 'a shorter delay does not replace a longer one');
  });

  it('records whitelisted as pass and disabled_for_recipient as skip', async () => {
    for (const [reasonCode, outcome] of [
      ['greylist.whitelisted', 'pass'],
      ['greylist.auto_whitelisted', 'pass'],
      ['greylist.disabled_for_recipient', 'skip'],
    ] as const) {
      const backends = answering({ action: contract.Action.ACTION_PASS, reasonCode, whitelistRule: 'rule' });
      const r = await runPhase('rcpt', [greylist], rcptContext('bob@example.test', { backends }));
      assert.equal(r.refusal, undefined);
      assert.equal(only(r.records).reasonCode, reasonCode);
      assert.equal(only(r.records).outcome, outcome);
    }
  });

  it('falls back on the action when the backend gives an unknown reason', async () => {
    const defer = answering({ action: contract.Action.ACTION_DEFER, reasonCode: 'greylist.whatever' });
    const r1 = await runPhase('rcpt', [greylist], rcptContext('bob@example.test', { backends: defer }));
    assert.equal(r1.refusal?.reason, 'greylist.new');
    const pass = answering({ action: contract.Action.ACTION_PASS, reasonCode: '' });
    const r2 = await runPhase('rcpt', [greylist], rcptContext('bob@example.test', { backends: pass }));
    assert.equal(r2.refusal, undefined);
    assert.equal(only(r2.records).reasonCode, 'greylist.passed');
  });

  for (const [who, authorize] of [
    ['authenticated', (s: Session) => Object.assign(s, { user: 'alice@example.org' })],
    ['trusted', (s: Session) => Object.assign(s, { trustedRule: '192.0.2.0/24' })],
  ] as const) {
    it(`skips a ${who} session without asking the backend`, async () => {
      const backends = new FakeBackends();
      const session = newSession();
      authorize(session);
      const r = await runPhase('rcpt', [greylist], rcptContext('bob@example.test', { backends, session }));
      assert.equal(r.refusal, undefined);
      assert.equal(backends.calls.length, 0);
      assert.equal(only(r.records).outcome, 'skip');
      assert.equal(only(r.records).reasonCode, 'greylist.skipped_authenticated');
    });
  }

  it('is not run when edge.checks.greylist.enabled is false', () => {
    assert.equal(greylist.enabled?.(rcptContext('bob@example.test')), true);
    const cfg = config('edge:\n  checks:\n    greylist:\n      enabled: false\n');
    assert.equal(greylist.enabled?.(rcptContext('bob@example.test', { cfg })), false);
  });

  describe('when the greylist service cannot be asked', () => {
    const down = () =>
      new FakeBackends({
        check: () => {
          throw backendDown('greylist', 'check');
        },
      });

    it('fail-open (the default) accepts and records the error', async () => {
      const ctx = rcptContext('bob@example.test', { backends: down() });
      const r = await runPhase('rcpt', [greylist], ctx);
      assert.equal(r.refusal, undefined);
      const d = only(r.records);
      assert.equal(d.outcome, 'error');
      assert.equal(d.reasonCode, 'greylist.unavailable');
      assert.equal(d.attributes?.failure_mode, 'fail-open');
      assert.equal(ctx.tx.greylistDelay, 0);
    });

    it('fail-closed refuses 451 4.3.0', async () => {
      const cfg = config('edge:\n  checks:\n    greylist:\n      failureMode: fail-closed\n');
      const r = await runPhase(
        'rcpt',
        [greylist],
        rcptContext('bob@example.test', { backends: down(), cfg }),
      );
      assert.equal(r.refusal?.reason, 'greylist.unavailable');
      assert.equal(r.refusal?.reply.code, 451);
      assert.equal(r.refusal?.reply.enhanced, '4.3.0');
    });
  });
});

describe('next-hop recipient', () => {
  const hopWith = (rcpt: (address: string) => HopReply | Promise<HopReply>) => {
    const tx = new FakeHopTransaction({ rcpt });
    return { tx, nextHop: new FakeNextHop(tx) };
  };

  it('accepts what the next hop accepts, recording nothing', async () => {
    const { tx, nextHop } = hopWith(() => ({ code: 250, enhanced: '2.1.5', text: 'OK' }));
    const ctx = rcptContext('bob@example.test', { nextHop });
    const r = await runPhase('rcpt', [nextHopRecipient], ctx);
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
    assert.deepEqual(tx.offered, ['bob@example.test']);
  });

  it('opens the next hop transaction at the first recipient with the envelope, and reuses it', async () => {
    const { tx, nextHop } = hopWith(() => ({ code: 250, enhanced: '', text: 'OK' }));
    const session = newSession();
    const t = session.beginTransaction('alice@example.org', {
      SIZE: '12345',
      BODY: '8bitmime',
      SMTPUTF8: true,
    });
    await runPhase('rcpt', [nextHopRecipient], rcptContext('bob@example.test', { nextHop, session }));
    assert.deepEqual(nextHop.envelopes, [
      { id: t.messageId, from: 'alice@example.org', size: 12345, body8bit: true, smtputf8: true },
    ]);
    assert.equal(t.hop, tx);
    await runPhase('rcpt', [nextHopRecipient], rcptContext('carol@example.test', { nextHop, session }));
    assert.equal(nextHop.envelopes.length, 1, 'the second recipient does not open another transaction');
    assert.deepEqual(tx.offered, ['bob@example.test', 'carol@example.test']);
  });

  it('opens the envelope without SIZE, 8BITMIME and SMTPUTF8 when they were not declared', async () => {
    const { nextHop } = hopWith(() => ({ code: 250, enhanced: '', text: 'OK' }));
    const session = newSession();
    const t = session.beginTransaction('', { SIZE: '0', BODY: '7BIT' });
    await runPhase('rcpt', [nextHopRecipient], rcptContext('bob@example.test', { nextHop, session }));
    assert.deepEqual(nextHop.envelopes, [
      { id: t.messageId, from: '', size: undefined, body8bit: false, smtputf8: false },
    ]);
  });

  it("refuses with the next hop's own 5xx reply", async () => {
    const { nextHop } = hopWith(() => ({ code: 550, enhanced: '5.1.1', text: 'No such user here' }));
    const r = await runPhase('rcpt', [nextHopRecipient], rcptContext('bob@example.test', { nextHop }), {
      recipient: 'bob@example.test',
    });
    assert.deepEqual(r.refusal?.reply, { code: 550, enhanced: '5.1.1', text: 'No such user here (ref s1)' });
    assert.equal(r.refusal?.reason, 'rcpt.nexthop_refused');
    const d = only(r.records);
    assert.equal(d.outcome, 'fail');
    assert.deepEqual(d.attributes, {
      next_hop: 'smtp://10.0.0.5:25',
      hop_reply: '550 5.1.1 No such user here',
    });
    assert.equal(d.detail, 'smtp://10.0.0.5:25 refused <bob@example.test>: 550 5.1.1 No such user here.');
  });

  it("defers with the next hop's own 4xx reply", async () => {
    const { nextHop } = hopWith(() => ({ code: 452, enhanced: '4.2.2', text: 'Mailbox full' }));
    const r = await runPhase('rcpt', [nextHopRecipient], rcptContext('bob@example.test', { nextHop }));
    assert.deepEqual(r.refusal?.reply, { code: 452, enhanced: '4.2.2', text: 'Mailbox full (ref s1)' });
    assert.equal(r.refusal?.reason, 'rcpt.nexthop_deferred');
    assert.equal(only(r.records).outcome, 'defer');
  });

  it('uses the catalog enhanced code when the next hop sent none', async () => {
    const { nextHop } = hopWith(() => ({ code: 554, enhanced: '', text: 'Go away' }));
    const r = await runPhase('rcpt', [nextHopRecipient], rcptContext('bob@example.test', { nextHop }));
    assert.deepEqual(r.refusal?.reply, { code: 554, enhanced: '5.0.0', text: 'Go away (ref s1)' });
  });

  it('defers 451 4.4.1 when the next hop cannot be reached', async () => {
    const { nextHop } = hopWith(() => {
      throw new DeliveryError('connect ECONNREFUSED 10.0.0.5:25', 'queue.nexthop_failed');
    });
    const r = await runPhase('rcpt', [nextHopRecipient], rcptContext('bob@example.test', { nextHop }), {
      recipient: 'bob@example.test',
    });
    assert.deepEqual(r.refusal?.reply, {
      code: 451,
      enhanced: '4.4.1',
      text: 'Recipient <bob@example.test> cannot be accepted now: the next hop is unavailable (ref s1)',
    });
    assert.equal(r.refusal?.reason, 'rcpt.nexthop_unavailable');
    const d = only(r.records);
    assert.equal(d.outcome, 'error');
    assert.deepEqual(d.attributes, {
      next_hop: 'smtp://10.0.0.5:25',
      error: 'connect ECONNREFUSED 10.0.0.5:25',
    });
  });

  it('lets other errors of the next hop propagate', async () => {
    const { nextHop } = hopWith(() => {
      throw new TypeError('bug');
    });
    await assert.rejects(
      runPhase('rcpt', [nextHopRecipient], rcptContext('bob@example.test', { nextHop })),
      TypeError,
    );
  });
});

describe('next-hop recipient limit', () => {
  it('takes one recipient per transaction for an LMTP next hop (maxRecipients 1): 452 4.5.3', async () => {
    const nextHop = new FakeNextHop(new FakeHopTransaction(), 1);
    const ctx = rcptContext('bob@example.test', { nextHop });
    const first = await runPhase('rcpt', [hopRecipientLimit], ctx);
    assert.equal(first.refusal, undefined);
    assert.deepEqual(first.records, []);
    ctx.tx.recipients.push('bob@example.test');
    const second = await runPhase(
      'rcpt',
      [hopRecipientLimit],
      rcptContext('carol@example.test', { nextHop, session: ctx.session }),
    );
    assert.deepEqual(second.refusal?.reply, {
      code: 452,
      enhanced: '4.5.3',
      text: 'One recipient per transaction here, send the others in another transaction (ref s1)',
    });
    assert.equal(only(second.records).outcome, 'defer');
  });

  it('has no limit for a next hop with maxRecipients 0', async () => {
    const ctx = rcptContext('bob@example.test', { nextHop: new FakeNextHop(new FakeHopTransaction(), 0) });
    ctx.tx.recipients.push('a@example.test', 'b@example.test', 'c@example.test');
    const r = await runPhase('rcpt', [hopRecipientLimit], ctx);
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });
});

describe('recipient count', () => {
  const cfg = config('edge:\n  maxRecipients: 2\n');

  it('accepts recipients up to edge.maxRecipients', async () => {
    const ctx = rcptContext('b@example.test', { cfg });
    ctx.tx.recipients.push('a@example.test');
    const r = await runPhase('rcpt', [recipientCount], ctx);
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });

  it('defers the recipient past the limit 452 4.5.3, naming the limit', async () => {
    const ctx = rcptContext('c@example.test', { cfg });
    ctx.tx.recipients.push('a@example.test', 'b@example.test');
    const r = await runPhase('rcpt', [recipientCount], ctx);
    assert.deepEqual(r.refusal?.reply, {
      code: 452,
      enhanced: '4.5.3',
      text: 'Too many recipients (at most 2 per message), send the rest in another transaction (ref s1)',
    });
    assert.equal(only(r.records).outcome, 'defer');
  });
});

describe('rcpt params', () => {
  it('accepts RCPT TO without parameters', async () => {
    const r = await runPhase('rcpt', [rcptParams], rcptContext('bob@example.test'));
    assert.equal(r.refusal, undefined);
    assert.deepEqual(r.records, []);
  });

  it('refuses any parameter 555 5.5.4, naming it', async () => {
    const ctx = rcptContext('bob@example.test', { params: { NOTIFY: 'SUCCESS,FAILURE' } });
    const r = await runPhase('rcpt', [rcptParams], ctx);
    assert.deepEqual(r.refusal?.reply, {
      code: 555,
      enhanced: '5.5.4',
      text: 'RCPT TO parameter NOTIFY is not supported (ref s1)',
    });
    assert.equal(only(r.records).outcome, 'fail');
  });
});
