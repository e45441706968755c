// The smtpguard command: `pnpm smtpguard <command>`.
import { hashPassword } from '@smtpguard/auth';
import { loadConfig } from '@smtpguard/config';
import { allReasons, explain } from '@smtpguard/reasons';
import { authCommand, authUsage } from './auth.js';
import { greylistCommand, greylistUsage } from './greylist.js';

const usage = `usage: smtpguard <command> [--config FILE]
  hash-password [PASSWORD]   print a hash for auth.domains[].mailboxes[].passwordHash (reads stdin without PASSWORD)
  explain CODE               what a reason code means and how to resolve it
  reasons                    list every reason code
${greylistUsage}
${authUsage}`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Removes `--name VALUE` from args and returns VALUE. */
function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : undefined;
}

async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  const configPath = option(args, '--config') ?? process.env.SMTPGUARD_CONFIG;
  const addressOpt = option(args, '--address');
  const [cmd, arg] = args;
  const out = (line: string) => process.stdout.write(`${line}\n`);
  switch (cmd) {
    case 'hash-password': {
      const password = arg ?? (await readStdin());
      if (!password) {
        process.stderr.write('smtpguard: empty password\n');
        return 2;
      }
      out(await hashPassword(password));
      return 0;
    }
    case 'explain':
      if (!arg) break;
      out(explain(arg));
      return 0;
    case 'reasons':
      for (const r of allReasons()) out(`${r.code.padEnd(32)} ${r.summary}`);
      return 0;
    case 'auth': {
      const address =
        addressOpt ?? (configPath ? (await loadConfig(configPath)).config.auth.listen : '127.0.0.1:7101');
      return authCommand(args.slice(1), address, out);
    }
    case 'greylist': {
      const address =
        addressOpt ?? (configPath ? (await loadConfig(configPath)).config.greylist.listen : '127.0.0.1:7103');
      return greylistCommand(args.slice(1), address, out);
    }
  }
  process.stderr.write(`${usage}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`smtpguard: ${err.message}\n`);
    process.exitCode = 1;
  },
);
