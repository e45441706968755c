// `pnpm start` as an operator stops it: the launcher gets the signal itself (the start script execs it instead
// of leaving a shell in between), and a wrapper killed without passing a signal on does not leave smtpguard
// running (the launcher stops when its parent is gone), whether the services run in its process or their own.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@smtpguard/testing';
import { buildConfig, writeConfig } from '../harness/system.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let configPath: string;

before(async () => {
  const { config } = await buildConfig({ dnsServer: '127.0.0.1:9' });
  config.edge.shutdownGraceMs = 500;
  ({ configPath } = await writeConfig(config));
});

const started: ChildProcess[] = [];
after(() => {
  for (const c of started) if (c.exitCode === null) c.kill('SIGKILL');
});

/** Pids of the processes whose parent is `pid`. */
async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) out.push(Number(e));
  }
  return out;
}
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** The process tree below pid (pid itself not included), with command lines. */
async function descendants(pid: number): Promise<Array<{ pid: number; cmd: string }>> {
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const c of await childrenOf(pid)) {
    out.push({ pid: c, cmd: await cmdline(c) }, ...(await descendants(c)));
  }
  return out;
}
const cmdline = (pid: number) => readFile(`/proc/${pid}/cmdline`, 'utf8').then((s) => s.replace(/\0/g, ' '));

function run(script: string): { child: ChildProcess; output: () => string } {
  const child = spawn('sh', ['-c', script], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return { child, output: () => out };
}

describe('stopping pnpm start', () => {
  it('SIGTERM to the process pnpm runs the start script in stops smtpguard', async () => {
    const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { scripts: { start: string } };
    // The script as pnpm runs it (sh -c), the build step (done) replaced by `true`, with this test's config.
    const script = pkg.scripts.start
      .replace(/^pnpm build/, 'true')
      .replace('deploy/local/smtpguard.yaml', configPath);
    const { child, output } = run(script);
    await waitFor('smtpguard is running', () => output().includes('smtpguard is running'), 30_000);
    const pid = child.pid as number;
    // pnpm passes SIGTERM to this process: the shell must have become the launcher (exec), not be left waiting
    // in between. The script execs the real node binary (`node -p process.execPath`), not pnpm's `node` shim,
    // a shell script that would itself wait for node instead of becoming it; and the services run inside the
    // launcher (one process, the default).
    assert.match(await cmdline(pid), /packages\/launcher\/dist\/main\.js/, output());
    assert.deepEqual(await descendants(pid), []);
    assert.match(output(), new RegExp(`processes +one \\(pid ${pid}\\)`));
    process.kill(pid, 'SIGTERM');
    await waitFor('the launcher stopped', () => !alive(pid) || undefined, 30_000);
  });

  it('with a process per service, SIGTERM to the launcher stops every service', async () => {
    const { child, output } = run(
      `exec "${process.execPath}" packages/launcher/dist/main.js --config ${configPath} --processes per-service`,
    );
    await waitFor('smtpguard is running', () => output().includes('smtpguard is running'), 30_000);
    const pid = child.pid as number;
    const all = await descendants(pid);
    assert.equal(all.filter((p) => p.cmd.includes('/services/')).length, 4, output());
    process.kill(pid, 'SIGTERM');
    await waitFor(
      'every process stopped',
      () => [pid, ...all.map((p) => p.pid)].every((p) => !alive(p)) || undefined,
      30_000,
    );
  });

  for (const mode of ['one', 'per-service'] as const) {
    it(`a wrapper killed without passing the signal on does not leave smtpguard running (--processes ${mode})`, async () => {
      // A shell that does not exec, as npx/npm wrappers and node shims are.
      const { child, output } = run(
        `"${process.execPath}" packages/launcher/dist/main.js --config ${configPath} --processes ${mode}; true`,
      );
      await waitFor('smtpguard is running', () => output().includes('smtpguard is running'), 30_000);
      const [launcher] = await childrenOf(child.pid as number);
      assert.ok(launcher);
      const services = await childrenOf(launcher);
      assert.equal(services.length, mode === 'one' ? 0 : 4);
      child.kill('SIGKILL');
      await waitFor(
        'the launcher and every service stopped',
        () => [launcher, ...services].every((p) => !alive(p)) || undefined,
        30_000,
      );
    });
  }

  it('refuses an unknown --processes value with a clear message', async () => {
    const { child, output } = run(
      `exec "${process.execPath}" packages/launcher/dist/main.js --config ${configPath} --processes two`,
    );
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 1);
    assert.match(output(), /--processes must be "one" or "per-service", not "two"/);
  });
});
