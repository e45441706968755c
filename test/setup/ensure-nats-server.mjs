// Test setup: the end-to-end tests need a real nats-server (Debian package "nats-server", JetStream).
import { execFileSync } from 'node:child_process';
import { ensureDebianPackage } from './apt.mjs';

const path = ensureDebianPackage('nats-server', 'nats-server');
console.log(`nats-server: ${path} (${execFileSync(path, ['--version']).toString().trim()})`);
