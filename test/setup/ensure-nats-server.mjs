// Test setup: the end-to-end tests need a real nats-server (Debian package "nats-server", JetStream).
// Installs it with apt-get when it is missing and we are root; otherwise says exactly what to do.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const candidates = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];
const found = () =>
  candidates.find((p) => existsSync(p)) ??
  (spawnSync('sh', ['-c', 'command -v nats-server']).stdout?.toString().trim() || '');

let path = found();
if (!path) {
  if (process.getuid?.() !== 0) {
    console.error(
      'nats-server is missing: install the Debian package (sudo apt-get install -y nats-server) and run again',
    );
    process.exit(1);
  }
  console.log('installing nats-server (Debian package) ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', 'nats-server'], { stdio: 'inherit', env });
  path = found();
  if (!path) {
    console.error('apt-get installed nats-server but the binary was not found');
    process.exit(1);
  }
}
const version = execFileSync(path, ['--version']).toString().trim();
console.log(`nats-server: ${path} (${version})`);
