// The reason catalog and the code agree: every code the sources name is in the catalog (the ReasonCode type
// enforces it where reasons are typed), and every catalog entry is named by some source that produces it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { REASON_CODES } from '@smtpguard/reasons';
import { PHASES } from '@smtpguard/smtp-edge';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Production TypeScript sources of the services and packages (no tests, no generated code). */
function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'node_modules' && name !== 'dist' && name !== 'gen') out.push(...sources(p));
    } else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.gen.ts')) {
      out.push(p);
    }
  }
  return out;
}

describe('reason catalog and code', () => {
  const files = ['services', 'packages'].flatMap((d) =>
    readdirSync(join(root, d)).flatMap((pkg) => {
      const src = join(root, d, pkg, 'src');
      try {
        return statSync(src).isDirectory() ? sources(src) : [];
      } catch {
        return [];
      }
    }),
  );
  const text = files.map((f) => readFileSync(f, 'utf8')).join('\n');
  const named = new Set([...text.matchAll(/'([a-z]+(?:\.[a-z_]+)+)'/g)].map((m) => m[1] as string));

  it('holds no reason that nothing produces', () => {
    assert.ok(files.length > 40, `read ${files.length} source files`);
    const unproduced = REASON_CODES.filter((code) => !named.has(code));
    assert.deepEqual(unproduced, [], 'catalog entries no source names');
  });

  it('docs/checks.md describes every check in its phase', () => {
    const doc = readFileSync(join(root, 'docs', 'checks.md'), 'utf8');
    for (const [phase, checks] of Object.entries(PHASES)) {
      const section = doc.slice(doc.indexOf(`### ${phase} `));
      for (const check of checks)
        assert.match(section, new RegExp(`\\n\\| ${check.name} \\|`), `${phase}: ${check.name}`);
    }
  });

  it('every check declares reasons from the catalog, and a check per phase list entry', () => {
    const known = new Set<string>(REASON_CODES);
    for (const [phase, checks] of Object.entries(PHASES)) {
      assert.ok(checks.length > 0, phase);
      for (const check of checks) {
        assert.equal(check.phase, phase, `${check.name} is listed in its own phase`);
        for (const r of check.reasons) assert.ok(known.has(r), `${check.name}: ${r}`);
      }
    }
  });
});
