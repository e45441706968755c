// What the image's deploy stage produces, checked outside Docker: runs the Dockerfile's
// `pnpm deploy --legacy --prod --no-optional` for each service and the CLI into a temporary directory,
// fails when a Node binary or a development tool got in, prints each output's size, then starts every
// service from its output on the Node given with --node (default: `node` on the PATH) and runs the CLI.
//
//   pnpm build && node scripts/check-deploy.mjs [--node /usr/bin/node] [--keep]
//
// Exit 1 when a check fails. A service that does not start on that Node is reported with its error.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
const nodeArg = args.includes('--node') ? args[args.indexOf('--node') + 1] : 'node';
const node = nodeArg.includes('/') ? resolve(nodeArg) : nodeArg;
const keep = args.includes('--keep');
const repo = resolve(import.meta.dirname, '..');
const SERVICES = ['smtp-edge', 'auth', 'reputation', 'greylist'];
const FORBIDDEN = [
  /^node-linux-/,
  /^typescript@/,
  /^@biomejs\+/,
  /^ts-proto@/,
  /^@bufbuild\+buf@/,
  /^@smtpguard\+testing@/,
];
const out = mkdtempSync(join(tmpdir(), 'smtpguard-deploy-'));
let failed = false;

function size(dir) {
  let bytes = 0;
  let files = 0;
  const seen = new Set();
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const s = statSync(p);
        if (seen.has(s.ino)) continue; // pnpm hard links: count each file once
        seen.add(s.ino);
        bytes += s.size;
        files++;
      }
    }
  };
  walk(dir);
  return { mb: (bytes / 1e6).toFixed(1), files };
}

const pnpm = ['-y', 'pnpm@10.34.9'];
for (const pkg of [...SERVICES, 'cli']) {
  const dir = join(out, pkg);
  const r = spawnSync(
    'npx',
    [...pnpm, '--filter', `@smtpguard/${pkg}`, 'deploy', '--legacy', '--prod', '--no-optional', dir],
    {
      cwd: repo,
      encoding: 'utf8',
      env: { ...process.env, CI: 'true' },
    },
  );
  if (r.status !== 0) throw new Error(`pnpm deploy ${pkg} failed:\n${r.stdout}${r.stderr}`);
  for (const f of ['src', 'tsconfig.json', 'tsconfig.tsbuildinfo'])
    rmSync(join(dir, f), { recursive: true, force: true });
  const bad = readdirSync(join(dir, 'node_modules', '.pnpm')).filter((n) =>
    FORBIDDEN.some((re) => re.test(n)),
  );
  const { mb, files } = size(dir);
  console.log(
    `${pkg.padEnd(11)} ${mb.padStart(6)} MB ${String(files).padStart(6)} files${bad.length ? `  FORBIDDEN: ${bad.join(', ')}` : ''}`,
  );
  if (bad.length) failed = true;
}

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

const p = {};
for (const k of ['auth', 'reputation', 'greylist', 'mx', 'submission', 'health']) p[k] = await freePort();
const config = join(out, 'smtpguard.yaml');
writeFileSync(
  config,
  `stateDir: ${join(out, 'state')}
edge:
  listeners: {mx: {port: ${p.mx}}, submission: {port: ${p.submission}}}
  health: {listen: 127.0.0.1:${p.health}}
  backends:
    auth: {address: 127.0.0.1:${p.auth}}
    reputation: {address: 127.0.0.1:${p.reputation}}
    greylist: {address: 127.0.0.1:${p.greylist}}
auth: {listen: 127.0.0.1:${p.auth}}
reputation: {listen: 127.0.0.1:${p.reputation}}
greylist: {listen: 127.0.0.1:${p.greylist}}
`,
);
console.log(
  `\nstarting each service from its deploy output on ${execFileSync(node, ['--version']).toString().trim()} (${node})`,
);
for (const s of SERVICES) {
  const child = spawn(
    node,
    ['--import', '@smtpguard/telemetry/register', 'dist/main.js', '--config', config],
    {
      cwd: join(out, s),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let text = '';
  child.stdout.on('data', (d) => (text += d));
  child.stderr.on('data', (d) => (text += d));
  const started = await new Promise((done) => {
    const finish = (ok) => {
      clearTimeout(timer);
      done(ok);
    };
    const timer = setTimeout(() => finish(false), 20_000);
    child.stdout.on('data', () => {
      if (text.includes(`${s} started`)) finish(true);
    });
    child.on('exit', () => finish(false));
    child.on('error', () => finish(false));
  });
  child.kill('SIGTERM');
  const error = text.split('\n').find((l) => /Error|error/.test(l)) ?? 'no "started" line';
  console.log(`${s.padEnd(11)} ${started ? 'starts' : `DOES NOT START: ${error.trim().slice(0, 160)}`}`);
  if (!started) failed = true;
}
const cli = spawnSync(node, ['dist/main.js', 'explain', 'relay.denied'], {
  cwd: join(out, 'cli'),
  encoding: 'utf8',
});
const cliOk = cli.status === 0 && cli.stdout.includes('relay.denied');
console.log(`${'cli'.padEnd(11)} ${cliOk ? 'explain works' : `FAILS: ${cli.stderr.slice(0, 160)}`}`);
if (!cliOk) failed = true;

if (keep) console.log(`\nkept: ${out}`);
else rmSync(out, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
