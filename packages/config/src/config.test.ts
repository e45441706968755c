import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from './index.js';

describe('config', () => {
  it('fills every default from an empty file', () => {
    const c = parseConfig('');
    assert.equal(c.edge.listeners.mx.port, 2525);
    assert.equal(c.edge.listeners.submission.requireAuth, true);
    assert.equal(c.edge.checks.recipient.failureMode, 'fail-closed');
    assert.equal(c.edge.checks.dnsbl.failureMode, 'fail-closed');
    assert.equal(c.edge.checks.greylist.failureMode, 'fail-open');
    assert.equal(c.edge.listeners.mx.greetingDelayMs, 1000);
    assert.equal(c.edge.listeners.submission.greetingDelayMs, 0);
    assert.equal(c.greylist.delaySeconds, 300);
    assert.deepEqual(c.edge.nextHop, { type: 'spool', dir: 'spool' });
  });

  it('refuses an allowedCommands list without the commands RFC 5321 requires', () => {
    assert.throws(
      () =>
        parseConfig('edge:\n  protocol:\n    allowedCommands: [HELO, EHLO, MAIL, RCPT, DATA]\n', 'x.yaml'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /edge\.protocol\.allowedCommands: must include/.test(err.problems[0] ?? ''),
    );
  });

  it('names the key and the problem for a wrong type', () => {
    assert.throws(
      () => parseConfig('edge:\n  listeners:\n    mx:\n      port: "twenty-five"\n', 'x.yaml'),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.length === 1 &&
        /^edge\.listeners\.mx\.port: .*number/i.test(err.problems[0] ?? ''),
    );
  });

  it('rejects unknown keys instead of ignoring a typo', () => {
    assert.throws(
      () => parseConfig('greylist:\n  delaySecond: 10\n'),
      (err: unknown) =>
        err instanceof ConfigError && err.problems[0] === 'greylist: unknown key "delaySecond"',
    );
  });

  it('rejects a clear-text password', () => {
    assert.throws(
      () =>
        parseConfig(
          'auth:\n  domains:\n    - name: a.test\n      mailboxes:\n        - { address: u@a.test, passwordHash: secret }\n',
        ),
      (err: unknown) =>
        err instanceof ConfigError &&
        /^auth\.domains\.0\.mailboxes\.0\.passwordHash: /.test(err.problems[0] ?? ''),
    );
  });

  it('reports broken YAML', () => {
    assert.throws(() => parseConfig('edge: [unclosed'), /not valid YAML/);
  });

  it('resolves state paths against the file directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sg-config-'));
    await writeFile(join(dir, 'c.yaml'), 'stateDir: state\n');
    const loaded = await loadConfig(join(dir, 'c.yaml'));
    assert.equal(loaded.statePath('spool'), join(dir, 'state', 'spool'));
    assert.equal(loaded.statePath('/abs/x'), '/abs/x');
  });

  it('reports a missing file', async () => {
    await assert.rejects(loadConfig('/nonexistent/smtpguard.yaml'), /cannot read the file: ENOENT/);
  });
});
