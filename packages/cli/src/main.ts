// The smtpguard command: `pnpm smtpguard <command>`.
import { hashPassword } from '@smtpguard/auth';
import { allReasons, explain } from '@smtpguard/reasons';

const usage = `usage: smtpguard <command>
  hash-password [PASSWORD]   print a hash for auth.domains[].mailboxes[].passwordHash (reads stdin without PASSWORD)
  explain CODE               what a reason code means and how to resolve it
  reasons                    list every reason code`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function main(argv: string[]): Promise<number> {
  const [cmd, arg] = argv;
  switch (cmd) {
    case 'hash-password': {
      const password = arg ?? (await readStdin());
      if (!password) {
        process.stderr.write('smtpguard: empty password\n');
        return 2;
      }
      process.stdout.write(`${await hashPassword(password)}\n`);
      return 0;
    }
    case 'explain':
      if (!arg) break;
      try {
        process.stdout.write(`${explain(arg)}\n`);
        return 0;
      } catch (err) {
        process.stderr.write(`smtpguard: ${(err as Error).message}\n`);
        return 1;
      }
    case 'reasons':
      for (const r of allReasons()) process.stdout.write(`${r.code.padEnd(30)} ${r.summary}\n`);
      return 0;
  }
  process.stderr.write(`${usage}\n`);
  return 2;
}

process.exitCode = await main(process.argv.slice(2));
