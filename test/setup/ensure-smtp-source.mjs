// Benchmark setup: Postfix's load generator smtp-source (Debian package "postfix"). Only the binaries are wanted:
// when smtp-source is not on the machine, the Debian package is downloaded with apt-get and unpacked into
// .var/tools/postfix (dpkg-deb -x). Nothing is installed system-wide, no MTA is configured or started.
// Prints the command to run (its shared libraries live next to it: LD_LIBRARY_PATH is set by the bench).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const toolDir = join(root, '.var/tools/postfix');
const unpacked = join(toolDir, 'usr/sbin/smtp-source');

/** The smtp-source to use and the LD_LIBRARY_PATH it needs ('' for a system install). */
export function findSmtpSource() {
  for (const p of ['/usr/sbin/smtp-source', '/usr/bin/smtp-source'])
    if (existsSync(p)) return { path: p, libs: '' };
  if (existsSync(unpacked)) return { path: unpacked, libs: join(toolDir, 'usr/lib/postfix') };
  return undefined;
}

export function ensureSmtpSource() {
  const found = findSmtpSource();
  if (found) return found;
  console.log(
    'smtp-source is missing: unpacking the Debian package postfix into .var/tools/postfix (binaries only) ...',
  );
  const dl = join(toolDir, 'deb');
  rmSync(dl, { recursive: true, force: true });
  mkdirSync(dl, { recursive: true });
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['download', 'postfix'], { cwd: dl, stdio: 'inherit', env });
  if (r.status !== 0 && process.getuid?.() === 0) {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    r = spawnSync('apt-get', ['download', 'postfix'], { cwd: dl, stdio: 'inherit', env });
  }
  const deb = readdirSync(dl).find((f) => f.endsWith('.deb'));
  if (r.status !== 0 || !deb) {
    console.error(
      'could not download the Debian package postfix (apt-get download postfix); install it and run again',
    );
    process.exit(1);
  }
  execFileSync('dpkg-deb', ['-x', join(dl, deb), toolDir], { stdio: 'inherit' });
  rmSync(dl, { recursive: true, force: true });
  const now = findSmtpSource();
  if (!now) {
    console.error(`unpacked ${deb} but ${unpacked} is not there`);
    process.exit(1);
  }
  return now;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const s = ensureSmtpSource();
  console.log(`smtp-source: ${s.path}`);
}
