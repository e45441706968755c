// The smtpguard command as an administrator runs it, against a running system: --help on every command, exit
// codes, `config check` (and -n), `status` (also with a service down), admin changes recorded as decisions with
// the operator's name, --json parsed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findDecision } from '../harness/decision-file.js';
import { type DnsServer, startDnsServer } from '../harness/dns-server.js';
import { ALICE, startTestSystem, type TestSystem } from '../harness/system.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let dns: DnsServer;
let sys: TestSystem;

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'packages/cli/dist/main.js'), ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, SMTPGUARD_CONFIG: sys.configPath, SMTPGUARD_OPERATOR: '' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  dns = await startDnsServer({ '2.0.0.127.dnsbl.test': { A: ['127.0.0.2'] } });
  sys = await startTestSystem({ dnsServer: dns.address });
});

after(async () => {
  await sys?.stop();
  await dns?.close();
});

describe('smtpguard --help', () => {
  it('prints the usage and exits 0 for the command and every subcommand; an unknown command exits 2', () => {
    const commands = [
      '',
      'hash-password',
      'explain',
      'reasons',
      'why',
      'log',
      'config',
      'status',
      'greylist',
      'auth',
    ];
    for (const c of commands) {
      for (const flag of ['--help', '-h']) {
        const r = cli(...(c ? [c] : []), flag);
        assert.equal(r.status, 0, `${c} ${flag}: ${r.stderr}`);
        assert.match(r.stdout, /^usage: smtpguard/, `${c} ${flag}`);
        if (c) assert.ok(r.stdout.includes(`  ${c}`), `${c}: its own usage`);
      }
    }
    assert.equal(cli('frobnicate').status, 2);
    assert.equal(cli().status, 2, 'no command');
    assert.equal(cli('explain').status, 2, 'explain without a code');
    assert.equal(cli('explain', 'relay.denied').status, 0);
    assert.equal(cli('reasons').status, 0);
  });
});

describe('smtpguard config check', () => {
  it('accepts a valid file (exit 0), and prints only the settings that differ from the defaults with -n', () => {
    const ok = cli('config', 'check', sys.configPath);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /: valid$/m);
    const json = JSON.parse(cli('config', 'check', sys.configPath, '--json').stdout);
    assert.equal(json.valid, true);
    const n = cli('config', 'check', sys.configPath, '-n');
    assert.equal(n.status, 0);
    assert.match(n.stdout, /^instance = "e2e"$/m);
    assert.match(n.stdout, /^greylist\.delaySeconds = 1$/m);
    assert.doesNotMatch(n.stdout, /^nats\.decisionStream/m, 'a default is not printed');
    assert.doesNotMatch(n.stdout, /scrypt\$/, 'no password hash');
    const nj = JSON.parse(cli('config', 'check', sys.configPath, '-n', '--json').stdout);
    assert.equal(nj.settings.instance, 'e2e');
    assert.equal(nj.settings['nats.decisionStream'], undefined);
  });

  it('refuses an invalid file with exit 1, naming the key', async () => {
    const bad = join(sys.dir, 'bad.yaml');
    await writeFile(bad, 'edge:\n  listeners:\n    mx:\n      port: "twenty-five"\n');
    const r = cli('config', 'check', bad);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /edge\.listeners\.mx\.port/);
    const json = JSON.parse(cli('config', 'check', bad, '--json').stdout);
    assert.equal(json.valid, false);
    assert.ok(json.problems.some((p: string) => p.startsWith('edge.listeners.mx.port')));
    assert.equal(cli('config', 'check').status, 2, 'no file');
  });
});

describe('admin changes are decisions with the operator', () => {
  it('records greylist whitelist changes with --operator', async () => {
    const add = cli('greylist', 'whitelist', 'add', 'client', '192.0.2.9', 'partner', '--operator', 'carol');
    assert.equal(add.status, 0, add.stdout + add.stderr);
    const d = await findDecision(
      sys.dir,
      (x) => x.reasonCode === 'admin.greylist_whitelist_added',
      'whitelist add',
    );
    assert.equal(d.phase, 'PHASE_ADMIN');
    assert.equal(d.service, 'greylist');
    assert.equal(d.attributes?.operator, 'carol');
    assert.equal(d.detail, 'carol added client 192.0.2.9 to the greylist whitelist (partner).');
    const rm = cli('greylist', 'whitelist', 'remove', 'client', '192.0.2.9', '--operator', 'carol');
    assert.equal(rm.status, 0);
    await findDecision(
      sys.dir,
      (x) => x.reasonCode === 'admin.greylist_whitelist_removed' && x.attributes?.result === 'removed',
      'whitelist remove',
    );
  });

  it('records auth lockout and quota resets, by default with the login name', async () => {
    // Nothing to clear: exit 1, and the attempt is recorded all the same.
    const clear = cli('auth', 'lockouts', 'clear', '192.0.2.10', 'client');
    assert.equal(clear.status, 1, clear.stdout + clear.stderr);
    assert.match(clear.stdout, /no failed logins counted for 192\.0\.2\.10/);
    const d = await findDecision(sys.dir, (x) => x.reasonCode === 'admin.lockout_cleared', 'lockout cleared');
    assert.equal(d.service, 'auth');
    assert.ok(d.attributes?.operator && d.attributes.operator !== 'unknown', JSON.stringify(d.attributes));
    const reset = cli('auth', 'quota', 'reset', ALICE.user, '--operator', 'dave');
    assert.equal(reset.status, 0, reset.stderr);
    const q = await findDecision(sys.dir, (x) => x.reasonCode === 'admin.quota_reset', 'quota reset');
    assert.equal(q.attributes?.operator, 'dave');
    assert.equal(q.attributes?.account, ALICE.user);
  });
});

describe('admin commands with --json', () => {
  it('prints the service answer as one JSON object', () => {
    const add = cli('greylist', 'whitelist', 'add', 'recipient', 'json@example.test', '--json');
    assert.equal(add.status, 0, add.stdout + add.stderr);
    const list = cli('greylist', 'whitelist', '--json');
    assert.equal(list.status, 0, list.stderr);
    const entries = (JSON.parse(list.stdout) as { entries: Array<{ kind: string; value: string }> }).entries;
    assert.ok(
      entries.some((e) => e.kind === 'WHITELIST_KIND_RECIPIENT' && e.value === 'json@example.test'),
      list.stdout,
    );
    const stats = JSON.parse(cli('greylist', 'stats', '--json').stdout) as Record<string, unknown>;
    assert.ok(Number(stats.whitelistEntries) >= 1, JSON.stringify(stats));
    const quota = cli('auth', 'quota', 'show', ALICE.user, '--json');
    assert.equal(quota.status, 0, quota.stderr);
    assert.equal((JSON.parse(quota.stdout) as { account: string }).account, ALICE.user);
    const lockouts = cli('auth', 'lockouts', '--json');
    assert.equal(lockouts.status, 0, lockouts.stderr);
    assert.ok(Array.isArray((JSON.parse(lockouts.stdout) as { entries?: unknown[] }).entries ?? []));
    // Without --json, text.
    assert.throws(() => JSON.parse(cli('greylist', 'stats').stdout));
  });
});

describe('smtpguard status', () => {
  it('reports every part up (exit 0), then a stopped service (exit 1)', async () => {
    const up = cli('status', '--json');
    assert.equal(up.status, 0, up.stdout + up.stderr);
    const parts = JSON.parse(up.stdout) as Array<{ part: string; ok: boolean; status: string }>;
    assert.deepEqual(
      parts.map((p) => [p.part, p.ok]),
      [
        ['auth', true],
        ['reputation', true],
        ['greylist', true],
        ['smtp-edge mx', true],
        ['smtp-edge submission', true],
      ],
    );
    assert.match(parts[3]?.status ?? '', /^220 /);
    const text = cli('status');
    assert.match(text.stdout, /^ok {3}auth /m);
    sys.system.services.get('greylist')?.child.kill('SIGKILL');
    await sys.system.services.get('greylist')?.exited;
    const down = cli('status', '--json');
    assert.equal(down.status, 1);
    const grey = (JSON.parse(down.stdout) as typeof parts).find((p) => p.part === 'greylist');
    assert.equal(grey?.ok, false);
    assert.match(grey?.status ?? '', /^UNAVAILABLE/);
  });
});
