// The smtpguard command: `pnpm smtpguard <command>`.
import { userInfo } from 'node:os';
import { hashPassword } from '@smtpguard/auth';
import { loadConfig } from '@smtpguard/config';
import { allReasons, explain } from '@smtpguard/reasons';
import { authCommand, authUsage } from './auth.js';
import { greylistCommand, greylistUsage } from './greylist.js';
import { configCommand, opsUsage, statusCommand } from './ops.js';
import { logCommand, UsageError, whyCommand, whyUsage } from './why.js';

const commandsUsage: Record<string, string> = {
  'hash-password': `  hash-password [PASSWORD]   print a hash for auth.domains[].mailboxes[].passwordHash (reads stdin without PASSWORD)`,
  explain: `  explain CODE               what a reason code means and how to resolve it`,
  reasons: `  reasons                    list every reason code`,
  why: whyUsage,
  log: whyUsage,
  config: opsUsage,
  status: opsUsage,
  greylist: greylistUsage,
  auth: authUsage,
};

const usage = `usage: smtpguard <command> [--config FILE] [--operator NAME]  (--help after any command: its usage)
    (--operator: who makes an admin change, recorded with its decision; default $SMTPGUARD_OPERATOR, else the login name)
${commandsUsage['hash-password']}
${commandsUsage.explain}
${commandsUsage.reasons}
${opsUsage}
${whyUsage}
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
  // Who makes an admin change: recorded with its decision.
  const operator = option(args, '--operator') || process.env.SMTPGUARD_OPERATOR || userInfo().username;
  const [cmd, arg] = args;
  const out = (line: string) => process.stdout.write(`${line}\n`);
  // --help anywhere: the usage (of the command when one is named), on stdout, exit 0.
  if (!cmd || args.includes('--help') || args.includes('-h') || cmd === 'help') {
    const named = cmd && cmd !== 'help' && !cmd.startsWith('-') ? commandsUsage[cmd] : undefined;
    if (!cmd || cmd === 'help' || cmd.startsWith('-') || named) {
      out(named ? `usage: smtpguard ${cmd} ...  [--config FILE]\n${named}` : usage);
      return cmd ? 0 : 2;
    }
  }
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
    case 'config':
      return configCommand(args.slice(1), out);
    case 'status':
      if (!configPath)
        throw new UsageError('status needs the config file: --config FILE or SMTPGUARD_CONFIG');
      return statusCommand(args.slice(1), configPath, out);
    case 'why':
    case 'log': {
      if (!configPath)
        throw new UsageError(`${cmd} needs the config file: --config FILE or SMTPGUARD_CONFIG`);
      const run = cmd === 'why' ? whyCommand : logCommand;
      return run(args.slice(1), configPath, out);
    }
    case 'auth': {
      const address =
        addressOpt ?? (configPath ? (await loadConfig(configPath)).config.auth.listen : '127.0.0.1:7101');
      return authCommand(args.slice(1), address, out, operator);
    }
    case 'greylist': {
      const address =
        addressOpt ?? (configPath ? (await loadConfig(configPath)).config.greylist.listen : '127.0.0.1:7103');
      return greylistCommand(args.slice(1), address, out, operator);
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
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
