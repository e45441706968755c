import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '@smtpguard/config';
import { FileKvStore } from '@smtpguard/kv-store';
import { createLogger } from '@smtpguard/logging';
import { directoryFrom } from '../directory.js';
import { LoginRecorder } from '../logins.js';
import { type FailureCounter, Lockout } from '../state/lockout.js';
import { type LoginEntry, PopLogins } from '../state/pop-logins.js';
import { answerPolicy, startDovecotPolicy } from './dovecot-policy.js';

const HASH = 'scrypt$N=16384,r=8,p=1$AAAA$AAAA';
const cfg = parseConfig(`
auth:
  lockout: { accountThreshold: 2 }
  popBeforeSmtp: { enabled: true }
  domains:
    - name: example.test
      mailboxes: [{ address: Alice@example.test, passwordHash: "${HASH}" }]
`).auth;

async function recorder() {
  const s = new FileKvStore(join(await mkdtemp(join(tmpdir(), 'sg-dovecot-')), 'state.jsonl'));
  const lockout = new Lockout(
    await s.bucket<FailureCounter>('lockout', { maxAgeSeconds: 0 }),
    () => cfg.lockout,
  );
  const logins = new PopLogins(
    await s.bucket<LoginEntry>('logins', { maxAgeSeconds: 0 }),
    () => cfg.popBeforeSmtp,
  );
  const dir = directoryFrom(cfg);
  return {
    logins,
    rec: new LoginRecorder(
      () => dir,
      logins,
      lockout,
      () => true,
    ),
    dir,
  };
}

describe('Dovecot auth policy answers', () => {
  it('records a successful report as a POP-before-SMTP entry of the directory’s account', async () => {
    const { rec, logins, dir } = await recorder();
    const body = { login: 'ALICE@example.test', remote: '192.0.2.7', protocol: 'pop3', success: true };
    assert.deepEqual(await answerPolicy('report', body, rec), { status: 0, msg: 'ok' });
    const r = await logins.check('192.0.2.7', 'alice@example.test', (a, s) => dir.maySend(a, s));
    assert.deepEqual([r.authorized, r.account], [true, 'alice@example.test']);
  });

  it('counts failed reports, then refuses the allow query (status -1); a policy reject is not a failure', async () => {
    const { rec } = await recorder();
    const fail = { login: 'alice@example.test', remote: '192.0.2.8', success: false };
    await answerPolicy('report', { ...fail, policy_reject: true }, rec);
    assert.equal((await answerPolicy('allow', fail, rec)).status, 0);
    await answerPolicy('report', fail, rec);
    await answerPolicy('report', fail, rec);
    const a = await answerPolicy('allow', { login: 'alice@example.test', remote: '203.0.113.1' }, rec);
    assert.equal(a.status, -1);
    assert.match(a.msg, /too many failed logins for this account/);
    await assert.rejects(answerPolicy('nonsense', fail, rec), /unknown command/);
  });

  it('serves the protocol over HTTP and checks the Authorization header', async () => {
    const { rec } = await recorder();
    const logger = createLogger('auth-test', { level: 'fatal', instance: 'test' });
    const server = await startDovecotPolicy('127.0.0.1:0', () => 'Bearer t0k', rec, logger);
    try {
      const url = `http://127.0.0.1:${server.port}/?command=allow`;
      const body = JSON.stringify({ login: 'alice@example.test', remote: '192.0.2.9' });
      const denied = await fetch(url, { method: 'POST', body });
      assert.equal(denied.status, 401);
      const ok = await fetch(url, { method: 'POST', body, headers: { authorization: 'Bearer t0k' } });
      assert.deepEqual(await ok.json(), { status: 0, msg: 'ok' });
    } finally {
      await server.close();
    }
  });
});
