// Test setup helper: makes sure a Debian package's program is installed (apt-get when it is missing and we are
// root, as on CI); otherwise says exactly what to do.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Returns the path of `program`, installing the Debian package `pkg` first when it is missing. */
export function ensureDebianPackage(program, pkg) {
  const candidates = [`/usr/sbin/${program}`, `/usr/bin/${program}`, `/usr/local/bin/${program}`];
  const found = () =>
    candidates.find((p) => existsSync(p)) ??
    (spawnSync('sh', ['-c', `command -v ${program}`])
      .stdout?.toString()
      .trim() ||
      '');
  let path = found();
  if (!path) {
    if (process.getuid?.() !== 0) {
      console.error(
        `${program} is missing: install the Debian package (sudo apt-get install -y ${pkg}) and run again`,
      );
      process.exit(1);
    }
    console.log(`installing ${pkg} (Debian package) ...`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', pkg], { stdio: 'inherit', env });
    path = found();
    if (!path) {
      console.error(`apt-get installed ${pkg} but ${program} was not found`);
      process.exit(1);
    }
  }
  return path;
}
