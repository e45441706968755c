// Fails when packages/contracts/src/gen is not what `buf generate` makes from proto/ now.
// Generates into a temporary copy of the tree and compares file by file.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const genRel = 'packages/contracts/src/gen';
const tmp = mkdtempSync(join(tmpdir(), 'sg-proto-'));
try {
  cpSync(join(root, 'proto'), join(tmp, 'proto'), { recursive: true });
  execFileSync('buf', ['generate'], { cwd: join(tmp, 'proto'), stdio: 'inherit' });
  const list = (dir) =>
    readdirSync(dir).flatMap((f) =>
      statSync(join(dir, f)).isDirectory() ? list(join(dir, f)) : [join(dir, f)],
    );
  const want = new Map(
    list(join(tmp, genRel)).map((f) => [relative(join(tmp, genRel), f), readFileSync(f, 'utf8')]),
  );
  const have = new Map(
    list(join(root, genRel)).map((f) => [relative(join(root, genRel), f), readFileSync(f, 'utf8')]),
  );
  const problems = [];
  for (const [f, text] of want) {
    if (!have.has(f)) problems.push(`missing: ${genRel}/${f}`);
    else if (have.get(f) !== text) problems.push(`differs: ${genRel}/${f}`);
  }
  for (const f of have.keys()) if (!want.has(f)) problems.push(`not generated from proto/: ${genRel}/${f}`);
  if (problems.length) {
    console.error(
      `generated contracts are out of date (run \`pnpm proto:gen\`):\n  ${problems.join('\n  ')}`,
    );
    process.exit(1);
  }
  console.log(`contracts up to date (${want.size} generated files match proto/)`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
