import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type LoadedConfig, parseConfig } from '@smtpguard/config';
import { createNextHop } from './create.js';
import { SmtpNextHop } from './smtp-hop.js';
import { SpoolNextHop } from './spool-hop.js';

describe('createNextHop', () => {
  let stateDir: string;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'smtpguard-create-'));
  });
  after(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  const loaded = (yaml: string): LoadedConfig => ({
    file: join(stateDir, 'smtpguard.yaml'),
    config: parseConfig(yaml, 'smtpguard.yaml'),
    statePath: (p) => join(stateDir, p),
  });

  it('makes the spool below the state directory by default', async () => {
    const hop = createNextHop(loaded('{}'));
    assert.ok(hop instanceof SpoolNextHop);
    assert.equal(hop.describe(), `spool ${join(stateDir, 'spool')}`);
    assert.ok((await stat(join(stateDir, 'spool', 'new'))).isDirectory());
    await hop.close();
  });

  it('makes an LMTP next hop with the config defaults', async () => {
    const hop = createNextHop(loaded('edge:\n  nextHop: { type: lmtp, host: 127.0.0.1, port: 24 }\n'));
    assert.ok(hop instanceof SmtpNextHop);
    assert.equal(hop.describe(), 'lmtp://127.0.0.1:24');
    assert.equal(hop.maxRecipients, 1);
    assert.equal(hop.cfg.pool.maxConnections, 50);
    await hop.close();
  });
});
