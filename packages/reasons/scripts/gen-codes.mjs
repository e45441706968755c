// Generates src/codes.gen.ts (the ReasonCode type) from catalog/reasons.yaml, so that code naming a reason
// the catalog lacks does not compile. `--check` fails when the committed file is out of date.
import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';

const catalog = new URL('../catalog/reasons.yaml', import.meta.url);
const target = new URL('../src/codes.gen.ts', import.meta.url);
// Keys starting with "_" are wording all replies share (_reference), not reasons.
const codes = Object.keys(parse(readFileSync(catalog, 'utf8'))).filter((k) => !k.startsWith('_'));
const text = `// Generated from catalog/reasons.yaml by \`pnpm reasons:gen\`; do not edit. \`pnpm reasons:check\` fails on drift.
export const REASON_CODES = [
${codes.map((c) => `  '${c}',`).join('\n')}
] as const;

export type ReasonCode = (typeof REASON_CODES)[number];
`;
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {}
  if (current !== text) {
    console.error('packages/reasons/src/codes.gen.ts is out of date: run `pnpm reasons:gen` and commit it');
    process.exit(1);
  }
  console.log(`reason codes up to date (${codes.length})`);
} else {
  writeFileSync(target, text);
  console.log(`wrote ${codes.length} reason codes to packages/reasons/src/codes.gen.ts`);
}
