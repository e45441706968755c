import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect, freePort, waitFor } from '@smtpguard/testing';

const DOVECOT = '/usr/sbin/dovecot';

export interface Dovecot {
  pop3Port: number;
  dir: string;
  stop(): Promise<void>;
}

export interface DovecotOptions {
  /** user -> clear-text password (stored as a SHA512-CRYPT hash). */
  users: Record<string, string>;
  /** auth_policy_server_url. */
  policyUrl: string;
}

/**
 * A real Dovecot (Debian dovecot-core + dovecot-pop3d, installed by `pnpm test:setup`) run in the foreground
 * from its own config in a temp dir: POP3 only, on 127.0.0.1 and a free port, a passwd-file user database, and
 * the auth policy server protocol pointed at `policyUrl` (a check before and a report after every login).
 * As root, the login and internal processes run as Debian's dovenull/dovecot users and mail as nobody.
 */
export async function startDovecot(opts: DovecotOptions): Promise<Dovecot> {
  if (!existsSync(DOVECOT))
    throw new Error('dovecot not found: run `pnpm test:setup` (installs dovecot-core, dovecot-pop3d)');
  const dir = await mkdtemp(join(tmpdir(), 'sg-dovecot-'));
  const pop3Port = await freePort();
  const root = process.getuid?.() === 0;
  const me = root ? undefined : execFileSync('id', ['-un']).toString().trim();
  const group = root ? undefined : execFileSync('id', ['-gn']).toString().trim();
  const uid = root ? 'nobody' : String(process.getuid?.());
  const gid = root ? 'nogroup' : String(process.getgid?.());
  await mkdir(join(dir, 'run'));
  await mkdir(join(dir, 'home'));
  await chmod(dir, 0o755);
  await chmod(join(dir, 'home'), 0o777);
  const lines: string[] = [];
  for (const [user, pass] of Object.entries(opts.users)) {
    const hash = execFileSync('doveadm', ['pw', '-s', 'SHA512-CRYPT', '-p', pass]).toString().trim();
    lines.push(`${user}:${hash}::::::`);
  }
  await writeFile(join(dir, 'users'), `${lines.join('\n')}\n`);
  await chmod(join(dir, 'users'), 0o644);
  const conf = `
base_dir = ${dir}/run
state_dir = ${dir}/run
instance_name = sg-${pop3Port}
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = ${dir}/dovecot.log
default_login_user = ${root ? 'dovenull' : me}
default_internal_user = ${root ? 'dovecot' : me}
default_internal_group = ${root ? 'dovecot' : group}
auth_policy_server_url = ${opts.policyUrl}
auth_policy_hash_nonce = smtpguard-e2e
auth_policy_check_before_auth = yes
auth_policy_check_after_auth = yes
auth_policy_report_after_auth = yes
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT ${dir}/users
}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/home/%u
}
mail_location = maildir:${dir}/home/%u/Maildir
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = ${pop3Port}
  }
}
service imap-login {
  inet_listener imap {
    port = 0
  }
}
`;
  await writeFile(join(dir, 'dovecot.conf'), conf);
  const child: ChildProcess = spawn(DOVECOT, ['-F', '-c', join(dir, 'dovecot.conf')], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  await waitFor('dovecot to accept POP3 connections', async () => {
    if (child.exitCode !== null)
      throw new Error(`dovecot exited with code ${child.exitCode} (see ${dir}/dovecot.log)`);
    return (await canConnect(pop3Port)) || undefined;
  });
  return {
    pop3Port,
    dir,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A POP3 login (USER/PASS) from `localAddress` with a raw TCP client; resolves with the answer to PASS. */
export function pop3Login(port: number, localAddress: string, user: string, pass: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ port, host: '127.0.0.1', localAddress });
    let buf = '';
    let step = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`POP3 login: no answer; got ${JSON.stringify(buf)}`));
    }, 10_000);
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      while (buf.includes('\r\n')) {
        const line = buf.slice(0, buf.indexOf('\r\n'));
        buf = buf.slice(buf.indexOf('\r\n') + 2);
        if (step === 0) {
          step = 1;
          s.write(`USER ${user}\r\n`);
        } else if (step === 1) {
          step = 2;
          s.write(`PASS ${pass}\r\n`);
        } else if (step === 2) {
          step = 3;
          clearTimeout(timer);
          s.end('QUIT\r\n');
          resolve(line);
        }
      }
    });
  });
}
