// Test setup: the PROXY protocol and scale tests put a real HAProxy (Debian package "haproxy") in front of the edge.
import { execFileSync } from 'node:child_process';
import { ensureDebianPackage } from './apt.mjs';

const path = ensureDebianPackage('haproxy', 'haproxy');
console.log(`haproxy: ${path} (${execFileSync(path, ['-v']).toString().split('\n')[0]})`);
