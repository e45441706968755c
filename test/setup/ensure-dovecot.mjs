// Test setup: the POP-before-SMTP end-to-end test runs a real Dovecot (Debian packages "dovecot-core" and
// "dovecot-pop3d") from its own config in a temp dir. Installs them with apt-get when missing and we are root;
// otherwise says exactly what to do. The packages' own service is not needed (and not started in containers).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const binary = '/usr/sbin/dovecot';
const pop3 = '/usr/lib/dovecot/pop3-login';
const missing = () => !existsSync(binary) || !existsSync(pop3);

if (missing()) {
  if (process.getuid?.() !== 0) {
    console.error(
      'dovecot is missing: install the Debian packages (sudo apt-get install -y dovecot-core dovecot-pop3d) and run again',
    );
    process.exit(1);
  }
  console.log('installing dovecot-core and dovecot-pop3d (Debian packages) ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync(
    'apt-get',
    ['install', '-y', '-qq', '--no-install-recommends', 'dovecot-core', 'dovecot-pop3d'],
    {
      stdio: 'inherit',
      env,
    },
  );
  if (missing()) {
    console.error('apt-get installed dovecot but its binaries were not found');
    process.exit(1);
  }
}
const version = spawnSync(binary, ['--version']).stdout?.toString().trim();
console.log(`dovecot: ${binary} (${version})`);
